"""ASGI layers that keep one client from holding the server: request bodies (unread or stalled), header
size and request rate. (The open-upload-session limit is the blob service's: it needs the index.)"""

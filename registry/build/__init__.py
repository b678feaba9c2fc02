"""`registry build`: images from Dockerfiles on the client side, with no daemon.

parser (Dockerfile text to stages), context (where the files come from), builder (stages and steps,
through the step cache), settings/copying/run (what each instruction does), layers and state (what
ends up in the local store). Never imported by the server.
"""

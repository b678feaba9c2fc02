"""A minimal container runtime: namespaces, an overlay root over the unpacked image, cgroup limits.

`containers.Runtime` is the lifecycle (create, run, stop, remove, exec, export); `state` keeps one JSON
record per container; `launch` starts processes inside namespaces; `rootfs` builds the root they see.
"""

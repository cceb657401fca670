"""The master process: the listening sockets, the workers, the routing table and its file, and
the hand-over of all of it to a new master."""

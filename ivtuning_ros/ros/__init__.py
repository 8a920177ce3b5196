"""ROS 2 side: the node, stream synchronisation, image conversion and outputs."""

"""astra_ros: an Astra-style interactive world model for ROS 2."""

# The rosidl-generated interfaces (astra_ros.msg, astra_ros.srv) are installed as a second
# `astra_ros` directory (the venv's site-packages or a colcon install space); join them.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)

__version__ = "0.1.0"

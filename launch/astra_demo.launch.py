"""Demo: simulated robot camera + commands -> astra_world_model -> prediction recorder.

    ros2 launch astra_ros astra_demo.launch.py model_path:=copy_last

The simulator (astra_sim_publisher) publishes ``image`` and ``joint_commands``; the recorder
(astra_prediction_recorder) subscribes to ``predicted_frames``. All three share ``namespace``.
The world model comes from astra_world_model.launch.py, so every argument of that file
(model_path, backend, prediction_rate, ...) works here too, with the same defaults.
"""

# ruff: noqa: I001  (the local launch/ folder makes ruff take the ROS `launch` package for first-party)
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    namespace = LaunchConfiguration("namespace")
    argument = DeclareLaunchArgument("namespace", default_value="astra_demo", description="Demo namespace")
    world_model = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            PathJoinSubstitution([FindPackageShare("astra_ros"), "launch", "astra_world_model.launch.py"])
        ),
        launch_arguments={"namespace": namespace}.items(),
    )
    simulator = Node(
        package="astra_ros",
        executable="astra_sim_publisher",
        name="astra_sim_publisher",
        namespace=namespace,
        output="screen",
    )
    recorder = Node(
        package="astra_ros",
        executable="astra_prediction_recorder",
        name="astra_prediction_recorder",
        namespace=namespace,
        output="screen",
    )
    return LaunchDescription([argument, simulator, world_model, recorder])

"""Demo: simulated robot camera + commands -> astra_world_model -> prediction recorder.

    ros2 launch astra_ros astra_demo.launch.py model_path:=copy_last recording:=/tmp/demo.npz

The simulator (astra_sim_publisher) publishes ``image``, ``joint_commands`` and ``joint_states``; the recorder
(astra_prediction_recorder) subscribes to ``image`` and ``predicted_frames`` and writes what it
received to ``recording`` when stopped. All three share ``namespace``, and the topic names are
relative, so they meet the world model's under it. The world model comes from
astra_world_model.launch.py, so every argument of that file (model_path, backend,
prediction_rate, ...) works here too, with the same defaults.
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
    arguments = [
        DeclareLaunchArgument("namespace", default_value="astra_demo", description="Demo namespace"),
        DeclareLaunchArgument(
            "recording",
            default_value="astra_demo_predictions.npz",
            description="npz the recorder writes when stopped (relative to the working directory)",
        ),
    ]
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
        arguments=[
            "--image-topic",
            "image",
            "--command-topic",
            "joint_commands",
            "--state-topic",
            "joint_states",
        ],
        output="screen",
    )
    recorder = Node(
        package="astra_ros",
        executable="astra_prediction_recorder",
        name="astra_prediction_recorder",
        namespace=namespace,
        arguments=[
            "--out",
            LaunchConfiguration("recording"),
            "--image-topic",
            "image",
            "--predictions-topic",
            "predicted_frames",
        ],
        output="screen",
    )
    return LaunchDescription([*arguments, simulator, world_model, recorder])

"""Demo: simulated robot camera + commands -> astra_world_model -> prediction recorder.

    ros2 launch astra_ros astra_demo.launch.py model_path:=copy_last

The simulator (astra_sim_publisher) publishes ``image`` and ``joint_commands``; the recorder
(astra_prediction_recorder) subscribes to ``predicted_frames``. All three share ``namespace``.
"""

# ruff: noqa: I001  (the local launch/ folder makes ruff take the ROS `launch` package for first-party)
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    namespace = LaunchConfiguration("namespace")
    arguments = [
        DeclareLaunchArgument("namespace", default_value="astra_demo", description="Namespace of the demo"),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution(
                [FindPackageShare("astra_ros"), "config", "astra_world_model.yaml"]
            ),
            description="YAML with an astra_world_model: ros__parameters: block",
        ),
        DeclareLaunchArgument(
            "model_path",
            default_value="engines/astra_small.onnx",
            description="Model file, or copy_last for the model-free backend",
        ),
        DeclareLaunchArgument(
            "backend", default_value="auto", description="auto | tensorrt | onnxruntime | torch"
        ),
        DeclareLaunchArgument("prediction_rate", default_value="10.0", description="Predictions per second"),
    ]
    simulator = Node(
        package="astra_ros",
        executable="astra_sim_publisher",
        name="astra_sim_publisher",
        namespace=namespace,
        output="screen",
    )
    world_model = Node(
        package="astra_ros",
        executable="astra_world_model",
        name="astra_world_model",
        namespace=namespace,
        output="screen",
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "model_path": LaunchConfiguration("model_path"),
                "backend": LaunchConfiguration("backend"),
                "prediction_rate": LaunchConfiguration("prediction_rate"),
            },
        ],
    )
    recorder = Node(
        package="astra_ros",
        executable="astra_prediction_recorder",
        name="astra_prediction_recorder",
        namespace=namespace,
        output="screen",
    )
    return LaunchDescription([*arguments, simulator, world_model, recorder])

"""Launch the astra_world_model node with config/astra_world_model.yaml.

    ros2 launch astra_ros astra_world_model.launch.py namespace:=robot image:=/camera/image_raw \
        model_path:=/path/to/model.onnx use_sim_time:=true

Each argument's default equals the YAML value, so a launch without arguments runs the YAML as is;
arguments override it (later entries in ``parameters`` win). Parameter names are checked against
the node's declarations by test/test_launch_static.py.
"""

# ruff: noqa: I001  (the local launch/ folder makes ruff take the ROS `launch` package for first-party)
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    arguments = [
        DeclareLaunchArgument(
            "namespace", default_value="", description="Namespace of the node and its topics"
        ),
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
        DeclareLaunchArgument("precision", default_value="auto", description="auto | fp32 | fp16"),
        DeclareLaunchArgument(
            "inference_threads", default_value="0", description="CPU threads per inference (0 = all cores)"
        ),
        DeclareLaunchArgument("horizon", default_value="8", description="Predicted frames per prediction"),
        DeclareLaunchArgument("denoising_steps", default_value="1", description="Denoising steps per frame"),
        DeclareLaunchArgument("prediction_rate", default_value="10.0", description="Predictions per second"),
        DeclareLaunchArgument(
            "command_type", default_value="joint_state", description="joint_state | twist | twist_stamped"
        ),
        DeclareLaunchArgument(
            "future_command_policy", default_value="hold_last", description="hold_last | planned"
        ),
        DeclareLaunchArgument(
            "use_sim_time", default_value="false", description="Use /clock (bag play --clock)"
        ),
        DeclareLaunchArgument("image", default_value="image", description="Camera image topic"),
        DeclareLaunchArgument(
            "joint_commands", default_value="joint_commands", description="JointState commands"
        ),
        DeclareLaunchArgument(
            "cmd_vel", default_value="cmd_vel", description="Twist / TwistStamped commands"
        ),
        DeclareLaunchArgument(
            "planned_commands",
            default_value="planned_commands",
            description="JointTrajectory of planned commands",
        ),
    ]
    node = Node(
        package="astra_ros",
        executable="astra_world_model",
        name="astra_world_model",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "model_path": LaunchConfiguration("model_path"),
                "backend": LaunchConfiguration("backend"),
                "precision": LaunchConfiguration("precision"),
                "inference_threads": LaunchConfiguration("inference_threads"),
                "horizon": LaunchConfiguration("horizon"),
                "denoising_steps": LaunchConfiguration("denoising_steps"),
                "prediction_rate": LaunchConfiguration("prediction_rate"),
                "command_type": LaunchConfiguration("command_type"),
                "future_command_policy": LaunchConfiguration("future_command_policy"),
                "use_sim_time": LaunchConfiguration("use_sim_time"),
            },
        ],
        remappings=[
            ("image", LaunchConfiguration("image")),
            ("joint_commands", LaunchConfiguration("joint_commands")),
            ("cmd_vel", LaunchConfiguration("cmd_vel")),
            ("planned_commands", LaunchConfiguration("planned_commands")),
        ],
    )
    return LaunchDescription([*arguments, node])

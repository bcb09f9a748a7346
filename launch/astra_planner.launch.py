"""Launch the astra_planner node with config/astra_planner.yaml.

    ros2 launch astra_ros astra_planner.launch.py image:=/camera/image_raw goal_image:=/goal \
        joint_commands:=/joint_commands model_path:=/path/to/model.onnx

Each argument's default equals the YAML value; arguments override it.
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
                [FindPackageShare("astra_ros"), "config", "astra_planner.yaml"]
            ),
            description="YAML with an astra_planner: ros__parameters: block",
        ),
        DeclareLaunchArgument(
            "model_path", default_value="engines/astra_small.onnx", description="World model"
        ),
        DeclareLaunchArgument("method", default_value="mppi", description="cem | mppi"),
        DeclareLaunchArgument("cost", default_value="mse", description="mse | edge"),
        DeclareLaunchArgument("candidates", default_value="64", description="Candidates per iteration"),
        DeclareLaunchArgument("horizon", default_value="8", description="Planned frames"),
        DeclareLaunchArgument("max_velocity", default_value="2.0", description="Command bound per component"),
        DeclareLaunchArgument("control_rate", default_value="0.0", description="Hz (0 = the model's rate)"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="Use /clock"),
        DeclareLaunchArgument("image", default_value="image", description="Camera image topic"),
        DeclareLaunchArgument("goal_image", default_value="goal_image", description="Goal image topic"),
        DeclareLaunchArgument("joint_commands", default_value="joint_commands", description="JointState out"),
        DeclareLaunchArgument("cmd_vel", default_value="cmd_vel", description="Twist out (twist models)"),
    ]
    node = Node(
        package="astra_ros",
        executable="astra_planner",
        name="astra_planner",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "model_path": LaunchConfiguration("model_path"),
                "method": LaunchConfiguration("method"),
                "cost": LaunchConfiguration("cost"),
                "candidates": LaunchConfiguration("candidates"),
                "horizon": LaunchConfiguration("horizon"),
                "max_velocity": LaunchConfiguration("max_velocity"),
                "control_rate": LaunchConfiguration("control_rate"),
                "use_sim_time": LaunchConfiguration("use_sim_time"),
            },
        ],
        remappings=[
            ("image", LaunchConfiguration("image")),
            ("goal_image", LaunchConfiguration("goal_image")),
            ("joint_commands", LaunchConfiguration("joint_commands")),
            ("cmd_vel", LaunchConfiguration("cmd_vel")),
        ],
    )
    return LaunchDescription([*arguments, node])

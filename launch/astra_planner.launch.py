"""Launch the astra_planner node with config/astra_planner.yaml.

    ros2 launch astra_ros astra_planner.launch.py image:=/camera/image_raw goal_image:=/goal \
        joint_commands:=/joint_commands model_path:=/path/to/model.onnx

Rendered from PARAMETERS in astra_ros/ros/planner_settings.py
by `python -m astra_ros.ros.parameter_files --write` (do not edit by hand). Each parameter argument's default
equals the YAML value, so a launch without arguments runs the YAML as is; arguments override it
(later entries in ``parameters`` win).
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
            "model_path",
            default_value="engines/astra_small.onnx",
            description="World model file, or 'copy_last'.",
        ),
        DeclareLaunchArgument(
            "method",
            default_value="mppi",
            description="Planner. Allowed: cem | mppi.",
        ),
        DeclareLaunchArgument(
            "cost",
            default_value="mse",
            description="Cost of the predicted frames against the goal. Allowed: edge | mse | "
            "multiscale.",
        ),
        DeclareLaunchArgument(
            "candidates",
            default_value="64",
            description="Command sequences per planning iteration. Allowed: [1, 4096].",
        ),
        DeclareLaunchArgument(
            "horizon",
            default_value="8",
            description="Planned frames (one command each). Allowed: [1, 64].",
        ),
        DeclareLaunchArgument(
            "max_velocity",
            default_value="2.0",
            description="Command bound: |command| <= this, per component (rad/s for "
            "joint_velocity models; m/s and rad/s for twist models). Allowed: "
            "[1e-06, 1000000].",
        ),
        DeclareLaunchArgument(
            "control_rate",
            default_value="0.0",
            description="Command publish rate in Hz (0 = the model's frame rate). Allowed: "
            "[0, 1000].",
        ),
        DeclareLaunchArgument(
            "use_sim_time",
            default_value="false",
            description="Run the control timer on /clock and stamp commands with it (true "
            "with `ros2 bag play --clock`).",
        ),
        DeclareLaunchArgument(
            "image",
            default_value="image",
            description="Camera image topic",
        ),
        DeclareLaunchArgument(
            "goal_image",
            default_value="goal_image",
            description="Goal image topic",
        ),
        DeclareLaunchArgument(
            "joint_commands",
            default_value="joint_commands",
            description="JointState commands out (joint_velocity models)",
        ),
        DeclareLaunchArgument(
            "cmd_vel",
            default_value="cmd_vel",
            description="Twist commands out (twist models)",
        ),
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

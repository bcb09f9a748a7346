"""Launch the astra_world_model node with config/astra_world_model.yaml.

    ros2 launch astra_ros astra_world_model.launch.py namespace:=robot image:=/camera/image_raw \
        model_path:=/path/to/model.onnx use_sim_time:=true

Rendered from PARAMETERS in astra_ros/ros/settings.py
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
                [FindPackageShare("astra_ros"), "config", "astra_world_model.yaml"]
            ),
            description="YAML with an astra_world_model: ros__parameters: block",
        ),
        DeclareLaunchArgument(
            "autostart",
            default_value="true",
            description="Configure and activate the (managed) node at start; false: it waits "
            "unconfigured for lifecycle transitions (`ros2 lifecycle set <node> "
            "configure`, then `activate`).",
        ),
        DeclareLaunchArgument(
            "model_path",
            default_value="engines/astra_small.onnx",
            description="Model file (.onnx with its .json sidecar, .pt checkpoint, or "
            "TensorRT engine); relative paths resolve against the working "
            "directory, the package share directory, then the repository. "
            "'copy_last' selects the model-free copy-last backend.",
        ),
        DeclareLaunchArgument(
            "backend",
            default_value="auto",
            description="Inference backend. Allowed: auto | tensorrt | onnxruntime | openvino "
            "| torch.",
        ),
        DeclareLaunchArgument(
            "precision",
            default_value="auto",
            description="Inference precision ('auto' = the backend's choice; 'bf16' = "
            "OpenVINO or torch on a CPU with native bf16; 'int8' = the .onnx "
            "model's int8 graph on ONNX Runtime CPU, when its sidecar records "
            "one). Allowed: auto | fp32 | fp16 | bf16 | int8.",
        ),
        DeclareLaunchArgument(
            "inference_threads",
            default_value="0",
            description="CPU threads per inference call (0 = the backend's default: 1 on ONNX "
            "Runtime, measured fastest on 2 shared cores; one per core on "
            "OpenVINO; torch's own otherwise). Allowed: [0, 256].",
        ),
        DeclareLaunchArgument(
            "denoising_steps",
            default_value="1",
            description="Denoising steps per predicted frame. Allowed: [1, 50].",
        ),
        DeclareLaunchArgument(
            "horizon",
            default_value="8",
            description="Predicted frames per prediction (H). Allowed: [1, 64].",
        ),
        DeclareLaunchArgument(
            "prediction_rate",
            default_value="10.0",
            description="Predictions per second of image time (0 = try every frame); "
            "inference runs in one worker, the newest frame wins. Allowed: [0, "
            "1000].",
        ),
        DeclareLaunchArgument(
            "confidence_decay",
            default_value="0.9",
            description="confidence[h-1] = confidence_decay ** h: a fixed prior that the "
            "future gets harder to predict (no uncertainty is computed); Imagine "
            "reports the mean over the horizon. Allowed: [0, 1].",
        ),
        DeclareLaunchArgument(
            "future_command_policy",
            default_value="hold_last",
            description="Commands the prediction is conditioned on: hold the current command, "
            "or the planned_commands topic (falls back to hold_last when no valid "
            "plan covers the step). Allowed: hold_last | planned.",
        ),
        DeclareLaunchArgument(
            "command_type",
            default_value="joint_state",
            description="Command input on 'joint_commands': joint_state "
            "(sensor_msgs/JointState, the velocity or position field by "
            "command_modality), float64_multi_array (std_msgs/Float64MultiArray "
            "of ros2_control's forward command controllers, values in joint_names "
            "order, layout ignored) or joint_trajectory "
            "(trajectory_msgs/JointTrajectory: the first point's velocities or "
            "positions, in force at header stamp + time_from_start); or twist / "
            "twist_stamped on 'cmd_vel'. Allowed: joint_state | "
            "float64_multi_array | joint_trajectory | twist | twist_stamped.",
        ),
        DeclareLaunchArgument(
            "command_modality",
            default_value="joint_velocity",
            description="What joint commands are: joint_velocity (rad/s) or joint_position "
            "(absolute targets in rad; the model gets them relative to the robot "
            "state from state_topic, and the stale command policy must be hold or "
            "skip: a position controller holds its last target). Ignored for "
            "twist. Allowed: joint_velocity | joint_position.",
        ),
        DeclareLaunchArgument(
            "state_topic",
            default_value="joint_states",
            description="sensor_msgs/JointState topic of the measured joint positions (mapped "
            "by name to the model's joint order, extra joints ignored), "
            "subscribed when the model takes a robot state or command_modality is "
            "joint_position; '' = none.",
        ),
        DeclareLaunchArgument(
            "stale_command_policy",
            default_value="zero",
            description="Action for an image with no command in force: zero, hold the last "
            "one, or skip the image. Allowed: zero | hold | skip.",
        ),
        DeclareLaunchArgument(
            "image_transport",
            default_value="raw",
            description="raw: sensor_msgs/Image on 'image'; compressed: "
            "sensor_msgs/CompressedImage (JPEG or PNG, image_transport's format "
            "strings) on 'image/compressed', checked against max_image_pixels "
            "from its header before decoding. Allowed: raw | compressed.",
        ),
        DeclareLaunchArgument(
            "max_image_pixels",
            default_value="8388608",
            description="Largest input image (height * width pixels) converted; larger ones "
            "are rejected from their header before any decoding "
            "(rejected.image_too_large). 2^23 admits 3840x2160. Allowed: [1, "
            "268435456].",
        ),
        DeclareLaunchArgument(
            "image_qos_reliability",
            default_value="best_effort",
            description="Reliability of the image subscription (best_effort = sensor-data "
            "profile; the log says when a best-effort stream loses frames). "
            "Allowed: best_effort | reliable.",
        ),
        DeclareLaunchArgument(
            "command_qos_reliability",
            default_value="reliable",
            description="Reliability of the command subscriptions (joint_commands / cmd_vel, "
            "planned_commands). Allowed: best_effort | reliable.",
        ),
        DeclareLaunchArgument(
            "output_qos_reliability",
            default_value="reliable",
            description="Reliability of the predicted_frames and predicted_image publishers. "
            "Allowed: best_effort | reliable.",
        ),
        DeclareLaunchArgument(
            "diagnostics_window",
            default_value="10.0",
            description="Seconds of recent history the node's level is judged on: WARN while "
            "any message was rejected or lost in it, ERROR while most of an "
            "input's were, OK again after a clean window. Allowed: [0.1, 3600].",
        ),
        DeclareLaunchArgument(
            "image_min_rate",
            default_value="-1.0",
            description="Images per second below which the image input is WARN (10 % "
            "tolerance); -1 = the model's frame rate, 0 = no minimum (no images "
            "at all is ERROR unless 0). Allowed: [-1, 1000].",
        ),
        DeclareLaunchArgument(
            "image_max_rate",
            default_value="0.0",
            description="Images per second above which the image input is WARN (0 = no "
            "maximum). Allowed: [0, 10000].",
        ),
        DeclareLaunchArgument(
            "command_min_rate",
            default_value="0.0",
            description="Commands per second below which the command input is WARN (0 = no "
            "minimum). Allowed: [0, 10000].",
        ),
        DeclareLaunchArgument(
            "max_stamp_age",
            default_value="1.0",
            description="Seconds: an input stamp older than this (node clock minus stamp) "
            "makes its input ERROR. Allowed: [0, 1000000].",
        ),
        DeclareLaunchArgument(
            "min_stamp_age",
            default_value="-0.1",
            description="Seconds: an input stamp younger than this (negative: in the future) "
            "makes its input ERROR. Allowed: [-1000000, 0].",
        ),
        DeclareLaunchArgument(
            "log_throttle_period",
            default_value="5.0",
            description="Seconds between repeated warnings of one kind (rejections, worker "
            "errors, frame loss). Allowed: [0, 3600].",
        ),
        DeclareLaunchArgument(
            "use_sim_time",
            default_value="false",
            description="Stamp latency and unstamped commands with /clock (true with `ros2 "
            "bag play --clock`).",
        ),
        DeclareLaunchArgument(
            "image",
            default_value="image",
            description="Camera image topic",
        ),
        DeclareLaunchArgument(
            "joint_commands",
            default_value="joint_commands",
            description="Joint commands (JointState, Float64MultiArray or JointTrajectory)",
        ),
        DeclareLaunchArgument(
            "cmd_vel",
            default_value="cmd_vel",
            description="Twist / TwistStamped commands",
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
                "autostart": LaunchConfiguration("autostart"),
                "model_path": LaunchConfiguration("model_path"),
                "backend": LaunchConfiguration("backend"),
                "precision": LaunchConfiguration("precision"),
                "inference_threads": LaunchConfiguration("inference_threads"),
                "denoising_steps": LaunchConfiguration("denoising_steps"),
                "horizon": LaunchConfiguration("horizon"),
                "prediction_rate": LaunchConfiguration("prediction_rate"),
                "confidence_decay": LaunchConfiguration("confidence_decay"),
                "future_command_policy": LaunchConfiguration("future_command_policy"),
                "command_type": LaunchConfiguration("command_type"),
                "command_modality": LaunchConfiguration("command_modality"),
                "state_topic": LaunchConfiguration("state_topic"),
                "stale_command_policy": LaunchConfiguration("stale_command_policy"),
                "image_transport": LaunchConfiguration("image_transport"),
                "max_image_pixels": LaunchConfiguration("max_image_pixels"),
                "image_qos_reliability": LaunchConfiguration("image_qos_reliability"),
                "command_qos_reliability": LaunchConfiguration("command_qos_reliability"),
                "output_qos_reliability": LaunchConfiguration("output_qos_reliability"),
                "diagnostics_window": LaunchConfiguration("diagnostics_window"),
                "image_min_rate": LaunchConfiguration("image_min_rate"),
                "image_max_rate": LaunchConfiguration("image_max_rate"),
                "command_min_rate": LaunchConfiguration("command_min_rate"),
                "max_stamp_age": LaunchConfiguration("max_stamp_age"),
                "min_stamp_age": LaunchConfiguration("min_stamp_age"),
                "log_throttle_period": LaunchConfiguration("log_throttle_period"),
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

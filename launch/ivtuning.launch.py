"""Launch ivtuning_node with a parameters file, camera topic remaps and optional rviz.

    ros2 launch ivtuning_ros ivtuning.launch.py namespace:=robot1 \
        rgb_image:=/camera/color/image_raw thermal_image:=/thermal/image_raw use_rviz:=true
"""

from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

PACKAGE = "ivtuning_ros"


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    args = [
        DeclareLaunchArgument("namespace", default_value="", description="Node namespace."),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([share, "config", "ivtuning.yaml"]),
            description="Node parameters (YAML, ros__parameters).",
        ),
        DeclareLaunchArgument(
            "rgb_image", default_value="rgb/image_raw", description="RGB image topic."
        ),
        DeclareLaunchArgument(
            "thermal_image", default_value="thermal/image_raw", description="Thermal image topic."
        ),
        DeclareLaunchArgument(
            "rgb_camera_info", default_value="rgb/camera_info", description="RGB CameraInfo topic."
        ),
        DeclareLaunchArgument("use_rviz", default_value="false", description="Start rviz2."),
        DeclareLaunchArgument(
            "rviz_config",
            default_value=PathJoinSubstitution([share, "config", "ivtuning.rviz"]),
            description="rviz2 configuration.",
        ),
        DeclareLaunchArgument("log_level", default_value="info", description="Node log level."),
        DeclareLaunchArgument(
            "fastdds_profile",
            default_value=EnvironmentVariable(
                "FASTDDS_DEFAULT_PROFILES_FILE",
                default_value=PathJoinSubstitution([share, "config", "fastdds_large_images.xml"]),
            ),
            description="Fast DDS profile for every process this launch starts (a 64 MiB "
            "shared-memory segment: camera-sized frames from other processes arrive); your "
            "own FASTDDS_DEFAULT_PROFILES_FILE wins. Camera drivers started elsewhere need "
            "it too.",
        ),
        DeclareLaunchArgument(
            "use_sim_time",
            default_value="false",
            description="Run on /clock (a bag played with --clock, a simulator).",
        ),
        DeclareLaunchArgument(
            "auto_activate",
            default_value="true",
            description="Configure and activate at start; false to leave the lifecycle to a "
            "manager (e.g. nav2_lifecycle_manager).",
        ),
    ]
    # the camera remaps, for the node and for rviz2 (whose layout names relative topics)
    camera_remaps = [
        ("rgb/image_raw", LaunchConfiguration("rgb_image")),
        ("thermal/image_raw", LaunchConfiguration("thermal_image")),
        ("rgb/camera_info", LaunchConfiguration("rgb_camera_info")),
    ]
    node = Node(
        package=PACKAGE,
        executable="ivtuning_node",
        name="ivtuning_node",
        namespace=LaunchConfiguration("namespace"),
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "auto_activate": LaunchConfiguration("auto_activate"),
                "use_sim_time": LaunchConfiguration("use_sim_time"),
            },
        ],
        remappings=camera_remaps,
        arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
        output="screen",
        emulate_tty=True,
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        namespace=LaunchConfiguration("namespace"),
        arguments=["-d", LaunchConfiguration("rviz_config")],
        remappings=camera_remaps,
        parameters=[{"use_sim_time": LaunchConfiguration("use_sim_time")}],
        condition=IfCondition(LaunchConfiguration("use_rviz")),
        output="screen",
    )
    profile = SetEnvironmentVariable(
        "FASTDDS_DEFAULT_PROFILES_FILE", LaunchConfiguration("fastdds_profile")
    )
    return LaunchDescription([*args, profile, node, rviz])

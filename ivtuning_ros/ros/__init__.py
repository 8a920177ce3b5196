"""ROS 2 side: the node, stream synchronisation, image conversion and outputs.

ivtuning_node (a lifecycle node; parameters in config/ivtuning.yaml) talks on:

Subscribes (QoS from qos_reliability / qos_depth, default best effort, keep last 1)
  rgb/image_raw        sensor_msgs/Image  rgb8, bgr8, rgba8, bgra8, mono8
  thermal/image_raw    sensor_msgs/Image  mono8 (AGC), mono16 / 16UC1 (raw Y16), 32FC1 (deg C)
  .../compressed       sensor_msgs/CompressedImage (JPEG, PNG) instead, with rgb_transport /
                       thermal_transport: compressed (image_transport's naming)
  rgb/camera_info      sensor_msgs/CameraInfo  (use_camera_info: size check only)
Publishes (every message carries the RGB image's header; thermal-only results carry the
thermal stamp and the last RGB frame_id, boxes in RGB pixels)
  detections           ivtuning_ros/DetectionArray  (every task: modality flag, thermal
                       stamp, inference time; detections for detection models)
  vision_detections    vision_msgs/Detection2DArray, the same boxes in the standard type
                       (class_id = class name; detection models, where vision_msgs is
                       installed: a ROS 2 install, or compat/ in the pip-only venv)
  mask                 sensor_msgs/Image mono8 class ids       (segmentation models)
  mask_color           sensor_msgs/Image rgb8, drawn only while subscribed
  saliency             sensor_msgs/Image mono8 0..255          (saliency models)
  label_map            ivtuning_ros/LabelMap, transient local (latched)
  overlay              sensor_msgs/Image rgb8 debug view, drawn only while subscribed
  /diagnostics         diagnostic_msgs/DiagnosticArray: rates, jitter, drops and bad
                       inputs by reason, inference time and latency p50/p95
Services: the standard lifecycle ones (~/change_state, ~/get_state, ...).

Modules: inputs (the camera subscriptions on a hidden helper node with its own executor
thread), codec (Image and CompressedImage <-> numpy), sync (pairing), pipeline (per-pair
steps shared with offline replay; thermal -> RGB grid by ivtuning_ros.geometry), slot (latest-only
hand-over), params, outputs, diagnostics, node, probe (a DDS client for tests and
benchmarks).
"""

"""``edgepilot detect``: argparse only here; the camera modules are imported when it runs."""
from __future__ import annotations

import argparse

EPILOG = """examples:
  edgepilot detect model.tflite --source 0 --serve 0.0.0.0:8080        # USB camera, watch in a browser
  edgepilot detect model.tflite --source rtsp://cam.local/stream --mqtt mqtt://broker:1883/site/cam1
  edgepilot detect model.tflite --source clip.mp4 --save out.mp4 --json > detections.jsonl
  edgepilot detect face_detection_short_range.tflite --source photos/ --decoder blazeface --json

sources: a camera index or /dev/videoN, a video file, an rtsp:// or http:// URL, an image file,
a folder or a glob of images. Live sources process the newest frame (stale ones are dropped and
counted) and are reopened when they drop; files process every frame in order.
--json prints one object per frame on stdout and a last {"summary": {...}} line."""


def add_parsers(sub) -> None:
    from apps.camera.choices import DECODER_CHOICES

    p = sub.add_parser("detect", help="object detection from a camera, stream, video or images",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help=".tflite or .onnx detector")
    p.add_argument("--source", required=True, help="0, /dev/video0, clip.mp4, rtsp://..., http://..., photo.jpg, folder/, 'glob*.jpg'")
    p.add_argument("--decoder", default="auto", choices=DECODER_CHOICES,
                   help="output layout (default auto: from the model's metadata, else recognized by output shapes)")
    p.add_argument("--labels", metavar="FILE", default=None,
                   help="class names, one per line or 'ID NAME' per line, instead of the model's own")
    p.add_argument("--score", type=float, default=None, help="score threshold (default: the model's, else 0.25)")
    p.add_argument("--iou", type=float, default=None, help="NMS IoU threshold (default: the model's, else 0.45)")
    p.add_argument("--device", default="auto", help="auto, cpu, gpu, edgetpu ... (default auto)")
    p.add_argument("--threads", type=int, default=None, help="inference threads (default 1)")
    p.add_argument("--streams", type=_streams, default="auto", metavar="N|auto",
                   help="run N interpreters of the model side by side, taking frames in turn; results stay in "
                        "capture order. auto (default): start with one and add one while the model is the "
                        "bottleneck and a CPU idles; the summary says what it did (docs/camera.md)")
    p.add_argument("--pin", action=argparse.BooleanOptionalAction, default=None,
                   help="pin the inference thread to one CPU, capture, prepare and decoding to the others (Linux, "
                        "--threads 1). Default: only while --streams auto runs one stream; --no-pin never "
                        "(a device busy with other work); the summary says what was done")
    p.add_argument("--max-frames", type=int, default=None, help="stop after N processed frames")
    p.add_argument("--loop", action="store_true", help="replay a video file or image folder endlessly")
    p.add_argument("--json", action="store_true", help="one JSON object per frame on stdout, then a summary")
    p.add_argument("--save", metavar="OUT.mp4", help="write the annotated video")
    p.add_argument("--force", action="store_true", help="overwrite --save if it exists")
    p.add_argument("--serve", metavar="HOST:PORT", help="serve the annotated video and detections to a browser")
    p.add_argument("--mqtt", metavar="mqtt://HOST:PORT/TOPIC", help="publish appear/leave events and a periodic summary")
    p.add_argument("--summary-every", type=float, default=10.0, metavar="SECONDS",
                   help="MQTT summary period (default 10 s)")
    p.add_argument("--show", action="store_true", help="show a window (needs a display and a GUI OpenCV)")
    p.add_argument("--no-track", action="store_true", help="no track ids and appear/leave events")
    p.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    p.set_defaults(func=run_detect)


def _streams(text: str) -> int | str:
    """--streams: 'auto' or an integer (its range is checked with the other options)."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'auto', got {text!r}") from None


def run_detect(args) -> int:
    from edge_runtime import deps

    from apps.camera.runner import DetectOptions, run

    cv2 = deps.require("cv2", "edgepilot detect")
    # OpenCV's own warnings ("can't open camera by index") would repeat what our one-line errors say
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

    options = DetectOptions(
        decoder=args.decoder, labels=args.labels, score=args.score, iou=args.iou, device=args.device, threads=args.threads,
        max_frames=args.max_frames, loop=args.loop, json=args.json, save=args.save, force=args.force, serve=args.serve,
        mqtt=args.mqtt, show=args.show, track=not args.no_track, summary_every_s=args.summary_every,
        progress=not args.quiet, pin=args.pin, streams=args.streams)
    run(args.model, args.source, options)
    return 0

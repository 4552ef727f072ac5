"""``--serve HOST:PORT``: watch a headless device from a browser.

``/`` is a small page showing the live video with the current detections and FPS;
``/stream.mjpg`` the annotated frames as MJPEG (``multipart/x-mixed-replace``, which every
browser and VLC play); ``/frame.jpg`` the latest frame; ``/status.json`` the latest detections.
The detection loop only hands over the frame and its detections; drawing and JPEG encoding
happen in each viewer's own server thread, and only while someone watches, so an unwatched
server costs the loop nothing.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>edgepilot detect</title>
<style>body{font:14px sans-serif;margin:12px;background:#111;color:#eee}img{max-width:100%;border:1px solid #444}
#status{font-weight:bold}table{border-collapse:collapse;margin-top:8px}td,th{padding:2px 8px;border-bottom:1px solid #333}</style>
</head><body>
<h3>edgepilot detect &mdash; <span id="source"></span></h3>
<div id="status">waiting for frames&hellip;</div>
<img id="video" src="/stream.mjpg" alt="live video">
<table><thead><tr><th>track</th><th>label</th><th>score</th><th>box (px)</th></tr></thead><tbody id="dets"></tbody></table>
<script>
async function poll() {
  try {
    const s = await (await fetch('/status.json', {cache: 'no-store'})).json();
    document.getElementById('source').textContent = s.source || '';
    document.getElementById('status').textContent =
      `frame ${s.frame}  |  ${(s.fps || 0).toFixed(1)} FPS  |  ${s.detections.length} objects`;
    document.getElementById('dets').innerHTML = s.detections.map(d =>
      `<tr><td>${d.track_id ?? ''}</td><td>${d.label ?? d.class_id}</td><td>${d.score.toFixed(2)}</td>` +
      `<td>${d.box.map(v => v.toFixed(0)).join(', ')}</td></tr>`).join('');
  } catch (e) {}
  setTimeout(poll, 500);
}
poll();
</script></body></html>
"""


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``:PORT`` (all interfaces) -> (host, port); port 0 picks a free one."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--serve {text!r}: expected HOST:PORT, e.g. 0.0.0.0:8080 or 127.0.0.1:8080")
    return host or "0.0.0.0", int(port)


class FrameServer:
    """An HTTP server in its own threads holding the latest annotated frame and status."""

    def __init__(self, address: str, jpeg_quality: int = 80):
        import cv2  # noqa: F401  (fail now, not in a client thread)

        host, port = parse_address(address)
        self.quality = jpeg_quality
        self._cond = threading.Condition()
        self._latest = None  # (frame image, Detections, fps, caption): drawn on demand
        self._status = {"frame": None, "fps": 0.0, "detections": []}
        self._seq = 0
        self._closing = False
        self.clients = 0
        self.frames_sent = 0
        self._count_lock = threading.Lock()
        try:
            self._httpd = ThreadingHTTPServer((host, port), _handler(self))
        except OSError as exc:
            raise ValueError(f"--serve {address}: cannot listen there ({exc.strerror or exc})") from None
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="serve", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}/"

    def start(self) -> "FrameServer":
        self._thread.start()
        return self

    def update(self, image: np.ndarray, detections, fps: float, caption: str, status: dict) -> None:
        """The newest frame (never modified afterwards), its detections and status."""
        with self._cond:
            self._latest, self._status = (image, detections, fps, caption), status
            self._seq += 1
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._httpd.shutdown()
        self._httpd.server_close()

    # used by the handler threads
    def _wait_frame(self, seen: int, timeout_s: float = 1.0):
        with self._cond:
            self._cond.wait_for(lambda: self._seq != seen or self._closing, timeout_s)
            return self._seq, self._latest, self._closing

    def _jpeg(self, latest) -> bytes:
        import cv2

        from apps.camera.draw import annotate

        image, detections, fps, caption = latest
        ok, data = cv2.imencode(".jpg", annotate(image, detections, fps, caption),
                                [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        return data.tobytes() if ok else b""

    def _count(self, delta: int) -> None:
        with self._count_lock:
            self.clients += delta


def _handler(server: FrameServer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep stderr for the app's own progress
            pass

        def _send(self, body: bytes, content_type: str, status: int = 200):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                self._send(PAGE.encode(), "text/html; charset=utf-8")
            elif path == "/status.json":
                with server._cond:
                    status = server._status
                self._send(json.dumps(status).encode(), "application/json")
            elif path == "/frame.jpg":
                _, latest, _ = server._wait_frame(-1, 0)
                if latest is None:
                    self._send(b"no frame yet", "text/plain", 503)
                else:
                    self._send(server._jpeg(latest), "image/jpeg")
            elif path == "/stream.mjpg":
                self._stream()
            else:
                self._send(b"not found", "text/plain", 404)

        def _stream(self):
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            server._count(+1)
            seen = 0
            try:
                while True:
                    seq, latest, closing = server._wait_frame(seen)
                    if closing:
                        return
                    if seq == seen or latest is None:
                        continue
                    seen = seq
                    data = server._jpeg(latest)
                    self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                     + str(len(data)).encode() + b"\r\n\r\n" + data + b"\r\n")
                    server.frames_sent += 1
            except (BrokenPipeError, ConnectionResetError):
                return
            finally:
                server._count(-1)

    return Handler

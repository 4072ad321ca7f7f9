"""python_echo: copies one point into another every 10 ms (default %QX0.0 -> %IX0.1)."""
import threading
import openplc

rt, worker, src, dst, stop = None, None, "%QX0.0", "%IX0.1", threading.Event()

def init(capsule):
    global rt, src, dst
    rt = openplc.Runtime(capsule)
    cfg = rt.config() or {}
    src, dst = cfg.get("from", src), cfg.get("to", dst)
    rt.log_info("python_echo:", src, "->", dst)

def loop():
    while not stop.wait(0.01):
        rt.write(dst, rt.read(src))

def start_loop():
    global worker
    stop.clear()
    worker = threading.Thread(target=loop, name="python_echo", daemon=True)
    worker.start()

def stop_loop():
    stop.set()
    worker.join(timeout=1)

"""Helpers for Python plugins of the OpenPLC Rust runtime.

A plugin is a module with ``init(capsule)`` and, optionally, ``start_loop()``,
``stop_loop()`` and ``cleanup()``. Wrap the capsule once and use the object::

    import openplc

    def init(capsule):
        global rt
        rt = openplc.Runtime(capsule)
        rt.log_info("ready, config:", rt.config())

    # anywhere, from any thread:
    rt.read("%QX0.0")            # bool for bits, int otherwise
    rt.write("%IW3", 1234)       # queued, reaches the program at its next scan
    rt.read_many(["%QW0", "%MW0"])
    rt.QW[0]                     # per area: one point,
    rt.QW[0:4]                   # a range,
    rt.IX[0, 1] = True           # or a bit (byte, bit)

Reads see the latest published scan (outputs, memory) and the inputs as published plus
this host's queued input writes. Writes to inputs are seen by the program at its next
scan; writes to outputs and memory are applied by rt-core at its next scan start, after
which the program may overwrite them.
"""

import json as _json
import logging as _logging
import threading as _threading
import traceback as _traceback

import _openplc_host as _core

__all__ = ["Runtime"]

_DEBUG, _INFO, _WARNING, _ERROR = 0, 1, 2, 3


class Area:
    """One area of the image, indexable: ``rt.QW[3]``, ``rt.QW[0:4]``, ``rt.IX[0, 1]``."""

    def __init__(self, runtime, prefix):
        self._rt = runtime
        self._prefix = prefix
        self._bits = prefix.endswith("X")

    def _address(self, key):
        if self._bits:
            byte, bit = key
            return "%{}{}.{}".format(self._prefix, int(byte), int(bit))
        return "%{}{}".format(self._prefix, int(key))

    def _addresses(self, key):
        if isinstance(key, slice):
            if self._bits:
                raise TypeError("bit areas take (byte, bit) pairs, not slices")
            return [self._address(i) for i in range(*key.indices(1024))]
        return None

    def __getitem__(self, key):
        many = self._addresses(key)
        if many is not None:
            return self._rt.read_many(many)
        return self._rt.read(self._address(key))

    def __setitem__(self, key, value):
        many = self._addresses(key)
        if many is not None:
            self._rt.write_many(list(zip(many, value)))
        else:
            self._rt.write(self._address(key), value)

    def __repr__(self):
        return "<openplc area %{}>".format(self._prefix)


class Runtime:
    """The runtime as one plugin sees it; made from the capsule ``init`` receives."""

    AREAS = ("IX", "IB", "IW", "ID", "IL", "QX", "QB", "QW", "QD", "QL", "MX", "MW", "MD", "ML")

    def __init__(self, capsule):
        self._h = _core.attach(capsule)
        for prefix in self.AREAS:
            setattr(self, prefix, Area(self, prefix))

    # -- the image --

    def read(self, address):
        """The value at ``address`` (``"%QW0"``): bool for bits, int otherwise."""
        return _core.read(self._h, [address])[0]

    def read_many(self, addresses):
        """Values of several addresses, all from the same scan."""
        return _core.read(self._h, list(addresses))

    def write(self, address, value):
        """Queues a write; negative numbers are stored in two's complement."""
        _core.write(self._h, [(address, value)])

    def write_many(self, values):
        """Queues several writes: a dict or a list of ``(address, value)`` pairs."""
        items = values.items() if hasattr(values, "items") else values
        _core.write(self._h, [(a, v) for a, v in items])

    # -- the PLC --

    def scan(self):
        """The program's scan counter of the latest scan seen."""
        return _core.scan(self._h)[1]

    def wait_scan(self, timeout=1.0):
        """Waits for the next scan; its counter, or None after ``timeout`` seconds."""
        return _core.wait_scan(self._h, self.scan(), float(timeout))

    def plc_state(self):
        """``"RUNNING"``, ``"STOPPED"``, ``"ERROR"`` or ``"EMPTY"``."""
        return _core.info(self._h)[2]

    def base_tick_ns(self):
        """The program's scan period in nanoseconds (0 without a program)."""
        return _core.info(self._h)[3]

    def request_stop(self, reason=""):
        _core.request(self._h, "stop", str(reason))

    def request_start(self, reason=""):
        _core.request(self._h, "start", str(reason))

    def set_switch_position(self, position):
        """Reports the device's run/stop switch: ``"run"``/``"stop"`` (or True/False).
        A start is refused while it reads STOP; only changes count as movement."""
        if isinstance(position, str):
            run = {"run": True, "stop": False}.get(position.strip().lower())
            if run is None:
                raise ValueError("expected 'run' or 'stop', not %r" % (position,))
        else:
            run = bool(position)
        _core.set_switch(self._h, run)

    # -- configuration and logging --

    @property
    def name(self):
        return _core.info(self._h)[0]

    def config_path(self):
        """The path of this plugin's configuration file, or None."""
        return _core.info(self._h)[1] or None

    def config(self):
        """This plugin's configuration file parsed as JSON, or None without one."""
        path = self.config_path()
        if not path:
            return None
        with open(path, encoding="utf-8") as f:
            return _json.load(f)

    def _log(self, level, parts):
        _core.log(self._h, level, " ".join(str(p) for p in parts))

    def log_debug(self, *parts):
        self._log(_DEBUG, parts)

    def log_info(self, *parts):
        self._log(_INFO, parts)

    def log_warn(self, *parts):
        self._log(_WARNING, parts)

    def log_error(self, *parts):
        self._log(_ERROR, parts)

    def logger(self):
        """A ``logging.Logger`` whose records go to the runtime log under this plugin's name."""
        log = _logging.getLogger("openplc.plugin." + self.name)
        if not any(isinstance(h, _Handler) for h in log.handlers):
            log.addHandler(_Handler(self))
            log.setLevel(_logging.DEBUG)
            log.propagate = False
        return log


class _Handler(_logging.Handler):
    def __init__(self, runtime):
        super().__init__()
        self._rt = runtime

    def emit(self, record):
        try:
            level = _ERROR if record.levelno >= _logging.ERROR else _WARNING if record.levelno >= _logging.WARNING else _INFO if record.levelno >= _logging.INFO else _DEBUG
            _core.log(self._rt._h, level, self.format(record))
        except Exception:
            self.handleError(record)


_previous_excepthook = _threading.excepthook


def _excepthook(args):
    """Reports an exception in a plugin's thread with its traceback; the host marks the
    plugin degraded. Exceptions of other threads go to the previous hook."""
    try:
        text = "".join(_traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback)).rstrip()
        files, modules = [], []
        tb = args.exc_traceback
        while tb is not None:
            files.append(tb.tb_frame.f_code.co_filename)
            modules.append(str(tb.tb_frame.f_globals.get("__name__", "")))
            tb = tb.tb_next
        thread = args.thread.name if args.thread is not None else "?"
        if _core.thread_exception("exception in thread {}:\n{}".format(thread, text), tuple(files), tuple(modules)):
            return
    except Exception:
        pass
    _previous_excepthook(args)


_threading.excepthook = _excepthook

"""op-proxy serves everyone from one event loop per process: writing or removing a person's PHP
session file (a save path on a slow or network disk, say) must happen beside it, never on it, or
every other sign-in waits for that disk."""

from __future__ import annotations

import asyncio
import sys
import threading

from op_proxy.legacy.php_session import PhpSessionStore, new_session_id

_session_file_calls: list[tuple[str, int]] = []  # (audit event, thread) for paths of sess_ files
_listening = threading.Event()


def _watch_session_files(event: str, args: tuple) -> None:
    if _listening.is_set() and event in ("open", "os.remove") and args and "sess_" in str(args[0]):
        _session_file_calls.append((event, threading.get_ident()))


sys.addaudithook(_watch_session_files)  # Python's own audit events (PEP 578): no function is replaced


def test_session_files_are_written_and_removed_beside_the_event_loop_not_on_it(tmp_path):
    store = PhpSessionStore({"save_handler": "files", "save_path": str(tmp_path)})
    session_id = new_session_id()

    def on_the_event_loop(step) -> int:
        """Run one step as op-proxy would; the thread of its event loop."""
        async def step_and_loop_thread() -> int:
            await step
            return threading.get_ident()
        _session_file_calls.clear()
        _listening.set()
        try:
            return asyncio.run(step_and_loop_thread())
        finally:
            _listening.clear()

    loop_thread = on_the_event_loop(store.write(session_id, {"user_is_logged_in": True,
                                                             "user_info": {"name": "สมชาย ใจดี"}}))
    assert [event for event, _thread in _session_file_calls] == ["open"]
    assert all(thread != loop_thread for _event, thread in _session_file_calls)
    assert (tmp_path / f"sess_{session_id}").read_text(encoding="utf-8").startswith("user_is_logged_in|b:1;")

    loop_thread = on_the_event_loop(store.destroy(session_id))
    assert [event for event, _thread in _session_file_calls] == ["os.remove"]
    assert all(thread != loop_thread for _event, thread in _session_file_calls)
    assert not (tmp_path / f"sess_{session_id}").exists()

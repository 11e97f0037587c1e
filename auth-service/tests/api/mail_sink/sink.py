"""A real SMTP server for the account tests (helpers/mail_sink.rs): aiosmtpd on 127.0.0.1:PORT,
printing one JSON line per message received ({"to": [...], "from": ..., "body": ...}) on stdout,
after a first line "ready"."""

import asyncio
import json
import sys
from email import message_from_bytes
from email.policy import default

from aiosmtpd.controller import Controller


class Print:
    async def handle_DATA(self, server, session, envelope):
        message = message_from_bytes(envelope.content, policy=default)
        body = message.get_body(preferencelist=("plain",))
        print(json.dumps({
            "to": envelope.rcpt_tos,
            "from": envelope.mail_from,
            "subject": message["subject"],
            "body": body.get_content() if body is not None else "",
        }), flush=True)
        return "250 Message accepted for delivery"


def main():
    controller = Controller(Print(), hostname="127.0.0.1", port=int(sys.argv[1]))
    controller.start()
    print("ready", flush=True)
    try:
        # Until the test closes stdin (or is gone).
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()

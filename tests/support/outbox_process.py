"""A separate outbox worker process for the delivery tests: claim and freeze, or drain.

python -m tests.support.outbox_process claim --database-url URL --at ISO
    claims the due rows, prints their ids as JSON, then waits to be killed;
python -m tests.support.outbox_process drain --database-url URL --at ISO --twilio-url URL
    prints "ready", waits for a line on stdin, sends until nothing is left, prints a count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime

from bot.bootstrap import bootstrap
from bot.delivery.twilio_sender import TwilioSender
from bot.delivery.worker import OutboxWorker
from bot.sandbox.twilio_api import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN
from bot.settings import Settings
from core.clock import FixedClock
from core.delivery import DeliveryPolicy
from core.notifications import Channel
from storage.outbox import SqlOutbox
from storage.uow import SqlUnitOfWorkFactory


async def _drain(worker: OutboxWorker) -> int:
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    processed, idle = 0, 0
    while idle < 3:
        done = await worker.run_once()
        processed += done
        idle = 0 if done else idle + 1
        if not done:
            await asyncio.sleep(0.05)
    return processed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["claim", "drain"])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--at", required=True)
    parser.add_argument("--twilio-url", default="")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()

    clock = FixedClock(datetime.fromisoformat(args.at))
    settings = Settings(environment="test", database_url=args.database_url, _env_file=None)  # type: ignore[call-arg]
    app = bootstrap(settings, clock=clock)
    outbox = SqlOutbox(SqlUnitOfWorkFactory(app.engine))
    if args.mode == "claim":
        rows = outbox.claim_due(
            clock.now(),
            limit=100,
            lease=DeliveryPolicy().claim_lease,
            channels=(Channel.SMS, Channel.WHATSAPP),
        )
        print(json.dumps([r.id for r in rows]), flush=True)
        sys.stdin.readline()  # frozen between the claim and the provider call, until killed
        return

    async def run() -> int:
        sender = TwilioSender(
            account_sid=DEFAULT_ACCOUNT_SID,
            auth_token=DEFAULT_AUTH_TOKEN,
            status_callback_url="https://lacre.example.com/twilio/status",
            sms_from="+15005550006",
            api_base_url=args.twilio_url,
            timeout=10,
        )
        worker = OutboxWorker(
            outbox=outbox,
            lacre=app.lacre,
            clock=clock,
            messages=sender,
            concurrency=args.concurrency,
        )
        try:
            return await _drain(worker)
        finally:
            await sender.close()

    print(json.dumps({"processed": asyncio.run(run())}), flush=True)
    app.engine.dispose()


if __name__ == "__main__":
    main()

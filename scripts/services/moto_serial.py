"""moto's DynamoDB server with one request at a time: the emulator the tests run DynamoDB on.

moto's own `moto_server` serves requests on threads and checks a ConditionExpression and then writes without a lock,
so under load two conditional writes of one item can both succeed (seen: 151 admitted of a limit of 150, Node and
Python writing one key). DynamoDB applies a conditional write atomically per item; serving every request under one
lock gives moto that guarantee (connections stay concurrent, keep-alive included). Arguments: -H host -p port.
"""

import argparse
import signal
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serial(environ, start_response):  # type: ignore[no-untyped-def]
        with lock:
            return list(app(environ, start_response))  # the whole response, made under the lock

    run_simple(args.host, args.port, serial, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()

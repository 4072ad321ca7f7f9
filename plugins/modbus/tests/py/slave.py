#!/usr/bin/env python3
"""A simulated Modbus slave (pymodbus) with known values, for the master tests.

Slave ids 1 and 2 answer; any other id gets no reply at all (ignore_missing_devices),
which is how a dead device behind a gateway looks. The same data store can be served
over TCP (--tcp PORT) and over a serial line in RTU framing (--rtu /dev/pts/N) at once,
so a test can check over TCP what our master wrote over RTU.

Prints "ready PORT" once every server listens (PORT: the TCP port, which --tcp 0 lets the
system choose, so no other process can take it between choosing and binding). With
--standby it first prints "standby" and binds nothing until a line arrives on stdin: the
test holds the port (bound, not listening: connections are refused) until then.
"""
import argparse
import asyncio
import sys

from pymodbus import FramerType
from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
from pymodbus.server import ModbusSerialServer, ModbusTcpServer


def block(values, size=64):
    values = list(values) + [0] * (size - len(values))
    # pymodbus' device context adds 1 to every address: block address 1 is Modbus 0.
    return ModbusSequentialDataBlock(1, values)


def context():
    dev1 = ModbusDeviceContext(
        di=block([1, 0, 1, 1]), co=block([]), ir=block([21, 7, 9]), hr=block([100, 200, 300])
    )
    dev2 = ModbusDeviceContext(
        di=block([0, 1]), co=block([]), ir=block([5, 6]), hr=block([1111, 2222, 3333])
    )
    return ModbusServerContext(devices={1: dev1, 2: dev2}, single=False)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tcp", type=int)
    parser.add_argument("--rtu")
    parser.add_argument("--baud", type=int, default=19200)
    parser.add_argument("--standby", action="store_true")
    args = parser.parse_args()
    if args.standby:
        print("standby", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    ctx = context()
    servers = []
    if args.tcp is not None:
        servers.append(ModbusTcpServer(ctx, address=("127.0.0.1", args.tcp), ignore_missing_devices=True))
    if args.rtu:
        servers.append(
            ModbusSerialServer(
                ctx, framer=FramerType.RTU, port=args.rtu, baudrate=args.baud, ignore_missing_devices=True
            )
        )
    for s in servers:
        await s.serve_forever(background=True)
    port = servers[0].transport.sockets[0].getsockname()[1] if args.tcp is not None else ""
    print("ready", port, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())

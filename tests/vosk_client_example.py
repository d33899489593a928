#!/usr/bin/env python3
"""A client written for vosk-server, kept as such clients are written (after
alphacep/vosk-server's websocket/test.py): it must work against Roundtable's /asr/vosk
without changes, apart from the address, which carries our token.

    python tests/vosk_client_example.py speech.wav "ws://host/asr/vosk?token=..."
"""

import asyncio
import sys
import wave

import websockets


async def run_test(uri):
    async with websockets.connect(uri) as websocket:
        wf = wave.open(sys.argv[1], "rb")  # noqa: SIM115 - as vosk-server's clients write it
        await websocket.send('{ "config" : { "sample_rate" : %d } }' % (wf.getframerate()))  # noqa: UP031 - as vosk-server's clients write it
        buffer_size = 4000  # frames: 8000 bytes of 16-bit mono audio
        while True:
            data = wf.readframes(buffer_size)

            if len(data) == 0:
                break

            await websocket.send(data)
            print(await websocket.recv())

        await websocket.send('{"eof" : 1}')
        print(await websocket.recv())


asyncio.run(run_test(sys.argv[2] if len(sys.argv) > 2 else "ws://localhost:2700"))

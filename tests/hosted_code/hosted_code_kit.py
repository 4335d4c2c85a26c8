"""Helpers for the code interpreter tests (the emulator handle, running flows, ``png_bytes``
and the spec checks are in flowkit): PNG-writing source for code run in the sandbox."""

PNG_CODE = '''
import struct, zlib
def png(path, width, height, rgb):
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    row = b"\\x00" + bytes(rgb) * width
    with open(path, "wb") as fh:
        fh.write(b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                 + chunk(b"IDAT", zlib.compress(row * height)) + chunk(b"IEND", b""))
'''
"""Python source defining ``png(path, width, height, rgb)`` for code run in the sandbox."""

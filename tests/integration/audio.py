"""Test audio: small music-like signals written as WAV (16/24-bit, float) and FLAC."""
import math
import random
import struct
import subprocess


def signal(seconds, rate=44100, channels=2, seed=1):
    """A chord sequence with a beat and a little noise: enough for the encoder and the
    analysers to do real work. Returns interleaved floats in [-1, 1]."""
    rnd = random.Random(seed)
    n = int(seconds * rate)
    chords = [(261.6, 329.6, 392.0), (220.0, 261.6, 329.6), (174.6, 220.0, 261.6), (196.0, 246.9, 293.7)]
    out = []
    beat = rate * 60 // 120
    for i in range(n):
        t = i / rate
        c = chords[int(t / 2.1) % 4]
        v = sum(math.sin(2 * math.pi * f * t) for f in c) * 0.15
        k = i % beat
        if k < 2000:
            v += 0.4 * math.sin(2 * math.pi * 60 * k / rate) * (1 - k / 2000)
        v += (rnd.random() - 0.5) * 0.02
        for ch in range(channels):
            out.append(max(-1.0, min(1.0, v * (1.0 if ch == 0 else 0.9))))
    return out


def wav_bytes(samples, rate=44100, channels=2, bits=16, fmt="int"):
    if fmt == "float":
        data = struct.pack("<%df" % len(samples), *samples)
        tag, bits = 3, 32
    elif bits == 16:
        data = struct.pack("<%dh" % len(samples), *[int(round(s * 32767)) for s in samples])
        tag = 1
    elif bits == 24:
        b = bytearray()
        for s in samples:
            v = int(round(s * 8388607)) & 0xFFFFFF
            b += bytes((v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF))
        data = bytes(b)
        tag = 1
    else:
        raise ValueError(bits)
    align = channels * bits // 8
    fmt_chunk = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def write_wav(path, seconds, rate=44100, channels=2, bits=16, fmt="int", seed=1):
    with open(path, "wb") as f:
        f.write(wav_bytes(signal(seconds, rate, channels, seed), rate, channels, bits, fmt))
    return path


def write_flac(path, seconds, rate=44100, channels=2, seed=1):
    wav = path + ".wav"
    write_wav(wav, seconds, rate, channels, 16, seed=seed)
    subprocess.run(["flac", "--silent", "--force", "-o", path, wav], check=True)
    return path

"""Benchmark of machine config generation and handling (issue 4 figures).

Prints medians of: ``kosctl gen config`` wall time as a subprocess (target <= 1 s, ECDSA),
the same with Ed25519/RSA keys in-process, secrets bundle generation, config load (strict) +
validate, redaction + YAML dump, and a strategic-merge patch. Run: python bench/config_gen.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from kos.resources import machineconfig as mc

try:
    from bench.calibrate import conditions
except ModuleNotFoundError:  # run as a script (python bench/<name>.py): bench/ is on sys.path
    from calibrate import conditions  # type: ignore[no-redef]


def median_ms(fn: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def gen_config_cli() -> None:
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sys.executable, "-m", "kos.apis.kosctl.main", "gen", "config", "demo", "https://10.5.0.2:6443",
                        "-o", d, "--force"], check=True, capture_output=True)


def main() -> None:
    print(conditions("config_gen start"), flush=True)
    cli = median_ms(gen_config_cli, 7)
    print(f"kosctl gen config (subprocess, ECDSA) wall: {cli:8.1f} ms  (target <= 1000 ms: "
          f"{'OK' if cli <= 1000 else 'MISSED'})")
    for kt in ("ecdsa", "ed25519", "rsa"):
        ms = median_ms(lambda kt=kt: mc.SecretsBundle.generate(key_type=kt), 5 if kt == "rsa" else 15)
        print(f"secrets bundle generate ({kt:7}):      {ms:8.2f} ms")
    bundle = mc.SecretsBundle.generate()
    opts = mc.GenOptions("demo", "10.5.0.2")
    print(f"generate configs + admin cert:          {median_ms(lambda: mc.generate(opts, bundle), 30):8.2f} ms")
    text = mc.generate(opts, bundle).controlplane.to_yaml()
    print(f"load (strict) controlplane.yaml:        {median_ms(lambda: mc.ConfigContainer.load(text), 50):8.2f} ms")
    c = mc.ConfigContainer.load(text)
    print(f"validate (metal):                       {median_ms(lambda: c.validate('metal'), 50):8.2f} ms")
    print(f"redact + YAML dump:                     {median_ms(lambda: c.redacted().to_yaml(), 50):8.2f} ms")
    patch = mc.parse_patch("machine:\n  network:\n    interfaces:\n      - interface: eth0\n        dhcp: true\n")
    data = c.to_data()
    print(f"strategic merge patch + reload:         "
          f"{median_ms(lambda: mc.ConfigContainer.from_data(mc.apply_patch(data, patch)), 50):8.2f} ms")


if __name__ == "__main__":
    main()

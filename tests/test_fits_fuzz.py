"""A FITS-aware fuzzer (issue 20 §1): valid cutouts written by ``training.cutouts.write_cutouts``
(cube and per-band layouts, plain and tile-compressed), mutated card by card and byte by byte —
values, quotes, keywords, value indicators, card lengths, END, padding, data, truncation —
with a seeded generator, then

* decoded in process (``read_fits``): a `Cutout` (finite, float32, the task's shape) or an
  `InputError` with a known reason, nothing else, and within a time bound;
* sent over HTTP to a real ``bentoml serve`` between good files: a 200 whose good cutouts are
  answered and whose mutated ones each get their own error (the reason ``read_fits`` gives) or an
  answer;
* scored by a batch scoring job (``scoring``, local engine) beside good files: the job finishes,
  every file is a row, the good ones scored and each mutated one refused with its reason or
  scored.

The number of mutants and the statuses are printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from test_service import server  # noqa: F401  (the fixture: a real `bentoml serve`)

from service.fits_input import REASONS, Cutout, InputError, read_fits

#: the task's bands and size, as the quick bundles have them
BANDS = {
    "lsbg": ("g", "r", "z"),
    "photoz": ("u", "g", "r", "i", "z"),
    "morphology": ("g", "r", "i"),
}
SIZE = {"morphology": 100, "lsbg": 64, "photoz": 64}
#: (task, layout, compression) of the seed files
SEEDS = [
    ("lsbg", "cube", None),
    ("lsbg", "bands", None),
    ("lsbg", "cube", "RICE_1"),
    ("lsbg", "bands", "GZIP_2"),
    ("photoz", "cube", None),
    ("morphology", "bands", "RICE_1"),
]
#: mutants per seed file, decoded in process (all), sent over HTTP and scored (a share each)
N_MUTANTS = 120
N_HTTP = 30
N_SCORED = 20
#: the most one file may take to decode or refuse [s]: astropy has looped for minutes on a
#: one-byte edit before (a negative GCOUNT)
TIME_LIMIT_S = 5.0
#: the generator's seed (the mutants are the same on every run)
SEED = 1000

#: the cards a mutation picks most often: those decoding reads, and those astropy's layout rests on
KEYS = ("SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "EXTEND", "XTENSION", "PCOUNT",
        "GCOUNT", "BANDS", "OBJECT", "EBV", "BUNIT", "FILTER", "EXTNAME", "MAGZP", "MAGZP_G",
        "MAGZP_R", "MAGZP_Z", "BSCALE", "BZERO", "ZIMAGE", "ZCMPTYPE", "ZBITPIX", "ZNAXIS",
        "ZNAXIS1", "ZNAXIS2", "ZNAXIS3", "ZTILE1", "ZTILE2", "ZQUANTIZ", "ZNAME1", "ZVAL1",
        "TFIELDS", "TFORM1", "TTYPE1", "THEAP", "END")  # fmt: skip
#: card values a mutation writes (columns 11-80)
VALUES = ("'unclosed", "'", "''", "1.2.3", "", "T", "F", "X", "(1, 2)", "(1.5, nan)", "1e999",
          "-1", "0", "-0", "nan", "inf", "9" * 30, "-" + "9" * 20, "3.4e38", "'g,r,z'", "'z,r,g'",
          "'g,g,r'", "'g,r,z,u,x'", "'g'", "'RICE_1'", "'GZIP_9'", "'NONE'", "'IMAGE   '",
          "'BINTABLE'", "'1PB(12)'", "'1QB(12)'", "'E'", "-32", "16", "8", "64", "-64", "3", "2",
          "1", "1000000", "'" + "x" * 75, "'\xff\xfe'", "= 5", "'a''b'", "'a' / comment",
          "/ only a comment")  # fmt: skip


class _Slow(Exception):
    pass


@contextmanager
def _time_limit(seconds: float):
    """Raise `_Slow` in the main thread after ``seconds`` (SIGALRM)."""

    def alarm(signum, frame):
        raise _Slow(f"over {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class Mutator:
    """Seeded mutations of one valid FITS file that know where its headers, cards, padding and
    data are (from the unmutated file)."""

    def __init__(self, data: bytes, seed: int) -> None:
        self.data = data
        self.rng = random.Random(seed)
        with fits.open(__import__("io").BytesIO(data), disable_image_compression=True) as f:
            self.hdus = [(h.fileinfo()["hdrLoc"], h.fileinfo()["datLoc"], h.fileinfo()["datSpan"])
                         for h in f]  # fmt: skip
        self.cards = []  # (offset, keyword)
        for start, dat, _ in self.hdus:
            for at in range(start, dat, 80):
                key = data[at : at + 8].decode("ascii", "replace").strip()
                self.cards.append((at, key))
                if key == "END":
                    break
        self.ops = [self.card_value, self.card_value, self.card_value, self.card_quote,
                    self.card_keyword, self.card_indicator, self.card_delete, self.card_shift,
                    self.padding, self.data_bytes, self.data_floats, self.truncate, self.append,
                    self.duplicate_card, self.long_value]  # fmt: skip

    def mutant(self) -> tuple[str, bytes]:
        """One mutated copy (1-3 mutations) and what was done."""
        data, done = bytearray(self.data), []
        for _ in range(self.rng.choice((1, 1, 1, 2, 3))):
            op = self.rng.choice(self.ops)
            done.append(op(data))
        return "; ".join(done), bytes(data)

    def _card(self) -> tuple[int, str]:
        if self.rng.random() < 0.7:
            chosen = [c for c in self.cards if c[1] in KEYS]
            if chosen:
                return self.rng.choice(chosen)
        return self.rng.choice(self.cards)

    def _write(self, data: bytearray, at: int, text: bytes, width: int = 80) -> None:
        data[at : at + width] = text[:width].ljust(width)

    def card_value(self, data: bytearray) -> str:
        at, key = self._card()
        value = self.rng.choice(VALUES)
        self._write(data, at, f"{key:<8}= {value}".encode("latin-1"))
        return f"{key} = {value}"

    def card_quote(self, data: bytearray) -> str:
        at, key = self._card()
        card = bytes(data[at : at + 80])
        quotes = [i for i, c in enumerate(card) if c == ord("'")]
        if len(quotes) >= 2 and self.rng.random() < 0.6:
            i = quotes[-1]
            card = card[:i] + b" " + card[i + 1 :]  # the closing quote removed
            what = "closing quote removed"
        else:
            i = self.rng.randrange(10, 80)
            card = card[:i] + b"'" + card[i + 1 :]
            what = f"quote at column {i + 1}"
        self._write(data, at, card)
        return f"{key}: {what}"

    def card_keyword(self, data: bytearray) -> str:
        at, key = self._card()
        new = self.rng.choice([key.lower(), "".join(self.rng.choices("ABCXYZ019_-", k=8)), "",
                               "HIERARCH", "NAXIS3", "BANDS", "END", "COMMENT", "BA NDS", "\x00"])  # fmt: skip
        data[at : at + 8] = new.encode("latin-1")[:8].ljust(8)
        return f"keyword {key} -> {new!r}"

    def card_indicator(self, data: bytearray) -> str:
        at, key = self._card()
        data[at + 8 : at + 10] = self.rng.choice([b"  ", b"=", b"==", b":=", b" ="])[:2].ljust(2)
        return f"{key}: value indicator changed"

    def card_delete(self, data: bytearray) -> str:
        at, key = self._card()
        self._write(data, at, b"")
        return f"{key} blanked"

    def duplicate_card(self, data: bytearray) -> str:
        (a, key), (b, other) = self._card(), self.rng.choice(self.cards)
        data[b : b + 80] = data[a : a + 80]
        return f"{key} copied over {other}"

    def long_value(self, data: bytearray) -> str:
        at, key = self._card()
        text = "".join(self.rng.choices("abcgrz,' ", k=120))
        self._write(data, at, f"{key:<8}= '{text}".encode())
        return f"{key}: a value that runs past column 80"

    def card_shift(self, data: bytearray) -> str:
        start, dat, _ = self.rng.choice(self.hdus)
        i = self.rng.randrange(start, dat)
        if i >= len(data):
            return "no header left to shift"
        if self.rng.random() < 0.5:
            del data[i]
            return f"byte {i} deleted (cards misaligned)"
        data.insert(i, self.rng.randrange(32, 127))
        return f"byte inserted at {i} (cards misaligned)"

    def padding(self, data: bytearray) -> str:
        ends = [at for at, key in self.cards if key == "END"]
        at = self.rng.choice(ends) + 80
        n = (-at) % 2880
        if not n:
            return "no header padding"
        fill = self.rng.choice([b"\x00" * n, self.rng.randbytes(n), b"END" + b" " * (n - 3)])
        data[at : at + n] = fill[:n]
        return f"header padding at {at} ({n} bytes) replaced"

    def data_bytes(self, data: bytearray) -> str:
        _, dat, span = self.rng.choice(self.hdus)
        if min(dat + span, len(data)) <= dat:
            return "no data"
        for _ in range(self.rng.choice((1, 4, 64))):
            i = self.rng.randrange(dat, min(dat + span, len(data)))
            data[i] = self.rng.randrange(256)
        return f"data bytes flipped in [{dat}, {dat + span})"

    def data_floats(self, data: bytearray) -> str:
        _, dat, span = self.rng.choice(self.hdus)
        if span < 4:
            return "no data"
        value = self.rng.choice([np.nan, np.inf, -np.inf, 3.4e38, -3.4e38, 1e-45])
        word = np.array([value], ">f4").tobytes()
        for _ in range(self.rng.choice((1, 16))):
            i = dat + 4 * self.rng.randrange(span // 4)
            if i + 4 <= len(data):
                data[i : i + 4] = word
        return f"data words set to {value}"

    def truncate(self, data: bytearray) -> str:
        n = self.rng.randrange(len(data))
        del data[n:]
        return f"truncated to {n} bytes"

    def append(self, data: bytearray) -> str:
        extra = self.rng.choice([self.rng.randbytes(self.rng.randrange(1, 5000)),
                                 bytes(self.data[:2880]), b"\x00" * 2880])  # fmt: skip
        data.extend(extra)
        return f"{len(extra)} bytes appended"


def _check_decoded(task: str, name: str, data: bytes) -> Cutout | InputError:
    """``read_fits`` on one file under the time bound: a good `Cutout` or an `InputError`."""
    t0 = time.monotonic()
    with _time_limit(TIME_LIMIT_S):
        try:
            out = read_fits(data, name, BANDS[task], (SIZE[task], SIZE[task]))
        except InputError as e:
            out = e
    assert time.monotonic() - t0 < TIME_LIMIT_S
    if isinstance(out, InputError):
        assert out.reason in REASONS and out.message.startswith(name), out
    else:
        img = out.image
        assert img.dtype == np.float32 and img.shape == (len(BANDS[task]), SIZE[task], SIZE[task])
        assert np.isfinite(img).all()
    return out


@pytest.fixture(scope="module")
def seeds(tiny_data, tmp_path_factory) -> dict[tuple, bytes]:
    """{(task, layout, compression): the bytes of one valid cutout our writer wrote}."""
    from training.cutouts import write_cutouts

    out = {}
    for task, layout, compression in SEEDS:
        domain = {"lsbg": "des", "photoz": "deep", "morphology": "y10"}[task]
        folder = tmp_path_factory.mktemp(f"seed_{task}_{layout}_{compression}")
        (path,) = write_cutouts(tiny_data / task / f"{domain}.h5", folder, indices=[0],
                                layout=layout, compression=compression)  # fmt: skip
        out[(task, layout, compression)] = path.read_bytes()
    return out


@pytest.fixture(scope="module")
def mutants(seeds) -> dict[tuple, list[tuple[str, bytes]]]:
    """``N_MUTANTS`` distinct mutants per seed file (seeded: the same on every run)."""
    out = {}
    for k, (key, data) in enumerate(seeds.items()):
        m, seen, found = Mutator(data, seed=SEED + k), {data}, []
        while len(found) < N_MUTANTS:
            what, bad = m.mutant()
            if bad not in seen:
                seen.add(bad)
                found.append((what, bad))
        out[key] = found
    return out


REPORT: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def _report():
    t0 = time.monotonic()
    yield
    n = sum(v for k, v in REPORT.items() if k.startswith("in process"))
    print(f"\nFITS fuzzer: {n} mutants of {len(SEEDS)} seed files, {time.monotonic() - t0:.0f} s: "
          f"{dict(REPORT)}")  # fmt: skip


@pytest.mark.filterwarnings("ignore")
def test_mutants_decode_or_are_refused(seeds, mutants):
    """Every mutant: a valid cutout or an InputError with a known reason, within the bound."""
    for key, found in mutants.items():
        assert isinstance(_check_decoded(key[0], "seed.fits", seeds[key]), Cutout), key
        for what, data in found:
            try:
                out = _check_decoded(key[0], "m.fits", data)
            except Exception as e:
                raise AssertionError(f"{key} mutant ({what}): {type(e).__name__}: {e}") from e
            REPORT["in process: " + (out.reason if isinstance(out, InputError) else "decoded")] += 1


def _expected(task: str, data: bytes, name: str) -> str | None:
    """The reason ``read_fits`` refuses ``data`` with, or None when it decodes."""
    out = _check_decoded(task, name, data)
    return out.reason if isinstance(out, InputError) else None


@pytest.mark.filterwarnings("ignore")
def test_mutants_over_http_beside_good_files(server, seeds, mutants):  # noqa: F811
    """Requests of a good file, up to five mutants and another good file: 200, the good files
    answered, each mutant its own error (the reason read_fits gives) or an answer."""
    import httpx

    for key, found in mutants.items():
        task, good = key[0], seeds[key]
        chosen = found[:N_HTTP]
        for i in range(0, len(chosen), 5):
            batch = chosen[i : i + 5]
            files = [good, *[d for _, d in batch], good]
            parts = [
                ("cutouts", (f"f{k}.fits", b, "application/fits")) for k, b in enumerate(files)
            ]
            data = {"ebv": "[" + ",".join(["0.02"] * len(files)) + "]"} if task == "photoz" else {}
            r = httpx.post(f"{server}/{task}", files=parts, data=data, timeout=120)
            REPORT[f"http: {r.status_code}"] += 1
            assert r.status_code == 200, (key, [w for w, _ in batch], r.text[:500])
            answers = r.json()["answers"]
            assert len(answers) == len(files)
            for a in (answers[0], answers[-1]):
                assert "error" not in a and "ood_score" in a, (key, a)
            for k, ((what, bad), a) in enumerate(zip(batch, answers[1:-1], strict=True), 1):
                want = _expected(task, bad, f"cutout[{k}]")
                if want is None:
                    ok = "error" not in a or a["error"]["reason"] == "bad_output"
                    assert ok, (key, what, a)
                else:
                    assert a["error"]["reason"] == want, (key, what, a)
                    assert a["error"]["where"].startswith(f"cutout[{k}]"), (key, what, a)
                REPORT["http cutout: " + a.get("error", {}).get("reason", "answered")] += 1


@pytest.mark.filterwarnings("ignore")
def test_mutants_in_a_batch_scoring_job(bundles, seeds, mutants, tmp_path):
    """A local scoring job over good files and mutants of each lsbg seed: it finishes, one row
    per file, good files scored, each mutant refused with read_fits' reason or scored."""
    import pyarrow.parquet as pq

    from scoring import ScoreJob, score

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    expected: dict[str, str | None] = {}
    for s, (key, found) in enumerate(k for k in mutants.items() if k[0][0] == "lsbg"):
        (inputs / f"good_{s}.fits").write_bytes(seeds[key])
        expected[f"good_{s}.fits"] = None
        for j, (_, bad) in enumerate(found[N_HTTP : N_HTTP + N_SCORED]):
            name = f"mutant_{s}_{j:03d}.fits"
            (inputs / name).write_bytes(bad)
            expected[name] = _expected("lsbg", bad, name)
    summary = score(ScoreJob("lsbg", str(inputs), str(tmp_path / "cat"), batch_size=16,
                             part_size=40))  # fmt: skip
    rows = {Path(r["source"]).name: r for r in pq.read_table(tmp_path / "cat").to_pylist()}
    assert set(rows) == set(expected) and summary["counts"]["rows"] == len(expected)
    for name, want in expected.items():
        row = rows[name]
        REPORT["scoring: " + (row["error_reason"] or "scored")] += 1
        if name.startswith("good"):
            assert row["error_reason"] is None and row["label"], row
        elif want is None:
            assert row["error_reason"] in (None, "bad_output"), row
        else:
            assert row["error_reason"] == want, (name, row["error_message"])


def _with_card(data: bytes, key: str, text: str) -> bytes:
    """``data`` with its first card ``key`` written as ``KEY     = <text>`` (raw bytes)."""
    at = data.find(key.ljust(8).encode() + b"=")
    while at % 80:
        at = data.find(key.ljust(8).encode() + b"=", at + 1)
    return data[:at] + f"{key:<8}= {text}".encode().ljust(80) + data[at + 80 :]


@pytest.mark.filterwarnings("ignore")
def test_issue_cards_over_http_beside_a_good_file(server, seeds):  # noqa: F811
    """The header cards schemathesis found (issue 20 §1): OBJECT or BANDS with an unclosed quote,
    BANDS = 1.2.3, each beside a good file: the good file answered, the broken one its error
    naming the card."""
    import httpx

    good = seeds[("lsbg", "cube", None)]
    for key, text in [("OBJECT", "'lsbg-des"), ("BANDS", "'g,r,z"), ("BANDS", "1.2.3")]:
        files = [good, _with_card(good, key, text), good]
        parts = [("cutouts", (f"f{k}.fits", b, "application/fits")) for k, b in enumerate(files)]
        r = httpx.post(f"{server}/lsbg", files=parts, timeout=60)
        assert r.status_code == 200, r.text
        a = r.json()["answers"]
        assert "label" in a[0] and "label" in a[2], a
        assert a[1]["error"]["reason"] == "bad_fits", a[1]
        assert f"header card {key} cannot be parsed" in a[1]["error"]["message"], a[1]
        assert f"{key.ljust(8)}= {text}" in a[1]["error"]["message"], a[1]

// Baseline for bench/decode.py: npm `gt06` 1.0.12 parsing the same GT06 frames.
// Reads {"frames": [hex...], "seconds": s} on stdin, prints {"ok": [...], "rate": frames/s}.
// npm gt06 skips the CRC and throws on types it does not know; only frames it parses count.
const Gt06 = require('gt06');

const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const frames = input.frames.map((hex) => Buffer.from(hex, 'hex'));
const parser = new Gt06();

const ok = [];
frames.forEach((frame, index) => {
  try {
    parser.parse(frame);
    ok.push(index);
  } catch (e) {
    // not supported by this library
  }
  parser.clearMsgBuffer();
});
const usable = ok.map((index) => frames[index]);

function run(seconds) {
  let count = 0;
  const end = process.hrtime.bigint() + BigInt(Math.round(seconds * 1e9));
  const start = process.hrtime.bigint();
  while (process.hrtime.bigint() < end) {
    for (const frame of usable) {
      parser.parse(frame);
      parser.clearMsgBuffer();
    }
    count += usable.length;
  }
  return count / (Number(process.hrtime.bigint() - start) / 1e9);
}

run(Math.min(1, input.seconds)); // let the JIT settle
console.log(JSON.stringify({ ok, rate: usable.length ? run(input.seconds) : 0 }));

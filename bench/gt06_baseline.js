// Baseline for bench/decode.py: npm `gt06` 1.0.12 parsing the same GT06 frames.
// Reads {"frames": [hex...], "devices": [index...] (optional), "seconds": s} on stdin and
// prints {"ok": [...], "rate": frames/s}. Each device has its own parser, as each tracker has its
// own connection; frames are parsed one per call, in the order given. npm gt06 skips the CRC
// and throws on types it does not know; only frames it parses count. The rate is per second of
// CPU time.
const Gt06 = require('gt06');

const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const frames = input.frames.map((hex) => Buffer.from(hex, 'hex'));
const devices = input.devices || frames.map(() => 0);
const parsers = new Map();
function parserOf(device) {
  let parser = parsers.get(device);
  if (parser === undefined) {
    parser = new Gt06();
    parsers.set(device, parser);
  }
  return parser;
}

const ok = [];
frames.forEach((frame, index) => {
  const parser = parserOf(devices[index]);
  try {
    parser.parse(frame);
    ok.push(index);
  } catch (e) {
    // not supported by this library
  }
  parser.clearMsgBuffer();
});
const usable = ok.map((index) => [parserOf(devices[index]), frames[index]]);

// CPU time of the whole process (JIT and GC threads included), in seconds: on a shared machine
// wall time would also count the time spent waiting for a core.
function cpu() {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

function run(seconds) {
  let count = 0;
  const start = cpu();
  const end = start + seconds;
  while (cpu() < end) {
    for (const [parser, frame] of usable) {
      parser.parse(frame);
      parser.clearMsgBuffer();
    }
    count += usable.length;
  }
  return count / (cpu() - start);
}

run(Math.min(1, input.seconds)); // let the JIT settle
console.log(JSON.stringify({ ok, rate: usable.length ? run(input.seconds) : 0 }));

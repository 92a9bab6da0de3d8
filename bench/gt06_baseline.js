// Baseline for bench/decode.py: npm `gt06` 1.0.12 parsing the same GT06 frames.
//
// Reads one JSON line {"frames": [hex...], "devices": [index...]} on stdin and answers
// {"ok": [indexes of the frames npm gt06 parses]}; then, for every line "run <seconds>", parses
// the usable frames over and over for that much CPU time and answers {"rate": frames/s}. The
// process stays up between runs, so the benchmark can alternate short runs of both sides.
//
// Each device has its own parser, as each tracker has its own connection; frames are parsed
// one per call, in the order given. npm gt06 skips the CRC and throws on types it does not know.
// Time is the CPU time of the whole process (JIT and GC threads included): on a shared machine
// wall time would also count the time spent waiting for a core.
const Gt06 = require('gt06');
const readline = require('readline');

let usable = [];

function cpu() {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

function load(input) {
  const frames = input.frames.map((hex) => Buffer.from(hex, 'hex'));
  const devices = input.devices || frames.map(() => 0);
  const parsers = new Map();
  const parserOf = (device) => {
    if (!parsers.has(device)) parsers.set(device, new Gt06());
    return parsers.get(device);
  };
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
  usable = ok.map((index) => [parserOf(devices[index]), frames[index]]);
  return ok;
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

const lines = readline.createInterface({ input: process.stdin });
let loaded = false;
lines.on('line', (line) => {
  if (!loaded) {
    loaded = true;
    console.log(JSON.stringify({ ok: load(JSON.parse(line)) }));
  } else if (line.startsWith('run ')) {
    const seconds = Number(line.slice(4));
    console.log(JSON.stringify({ rate: usable.length ? run(seconds) : 0 }));
  } else if (line === 'quit') {
    process.exit(0);
  }
});

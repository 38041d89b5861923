// The graphile-worker reference for the engine figure: runs a worker with a no-op task until
// SIGTERM. The bench adds the jobs and times the drain from the database, as it does for
// firstcall. Run from the directory where graphile-worker is installed:
//   node worker.cjs batched|defaults   (DATABASE_URL names the database)
"use strict";
const path = require("path");
const { run } = require(path.join(process.cwd(), "node_modules", "graphile-worker"));

// "batched" is the configuration graphile-worker's performance page documents for its best
// figures; "defaults" sets nothing but the connection.
const CONFIGS = {
  batched: {
    concurrentJobs: 24,
    maxPoolSize: 25,
    localQueue: { size: 500 },
    completeJobBatchDelay: 0,
    failJobBatchDelay: 0,
  },
  defaults: {},
};

async function main() {
  const mode = process.argv[2];
  if (!(mode in CONFIGS)) {
    console.error(`usage: node worker.cjs ${Object.keys(CONFIGS).join("|")}`);
    process.exit(2);
  }
  const runner = await run({
    preset: { worker: { connectionString: process.env.DATABASE_URL, ...CONFIGS[mode] } },
    noHandleSignals: true,
    taskList: { noop: async () => {} },
  });
  console.log("ready");
  const stop = () => runner.stop().then(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  await runner.promise;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

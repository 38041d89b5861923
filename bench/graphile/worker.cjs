// The graphile-worker reference for the engine figure: runs a worker until SIGTERM, with two
// tasks: `noop` does nothing; `step` does what a reminder step's writes amount to, in one
// transaction: one row into an outbox table and one counter raised on the call. The bench adds
// the jobs and times the drain from the database, as it does for firstcall. Run from the
// directory where graphile-worker is installed:
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

// About the size of a reminder email (text and HTML).
const BODY = "Your first call with the customer is due. Here is what they asked for and what was promised.\n".repeat(80);

const TASKS = {
  noop: async () => {},
  step: async (payload, helpers) => {
    await helpers.withPgClient(async (client) => {
      await client.query("BEGIN");
      try {
        await client.query("INSERT INTO ref_outbox (call_id, subject, body) VALUES ($1, $2, $3)", [
          payload.call_id,
          `Reminder: first call ${payload.call_id}`,
          BODY,
        ]);
        await client.query("UPDATE ref_calls SET reminders_sent = reminders_sent + 1, updated_at = now() WHERE id = $1", [payload.call_id]);
        await client.query("COMMIT");
      } catch (e) {
        await client.query("ROLLBACK");
        throw e;
      }
    });
  },
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
    taskList: TASKS,
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

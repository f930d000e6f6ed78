// Drives the dashboard in headless Chromium; run by jobs-http/tests/dashboard.rs, which
// starts the server with the job types used here and checks the store afterwards.
//
//   node dashboard.mjs <url>   (env: CHROMIUM = the browser, JOBS_TOKEN, HOSTILE = an error
//                               message with markup, SCREENSHOT = a .png path for the
//                               page at the end; a job's and a flow's page are saved
//                               beside it as -job.png and -flow.png)
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const url = process.argv[2];
const token = process.env.JOBS_TOKEN;
const profile = mkdtempSync(join(tmpdir(), "jobs-dashboard-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
  viewport: { width: 1280, height: 860 },
});
const page = context.pages()[0] || await context.newPage();
page.setDefaultTimeout(20000);
const pageErrors = [];
page.on("pageerror", (error) => pageErrors.push(error.message));
page.on("console", (message) => {
  // Refused requests are logged by the browser too; they are judged by their answers below.
  if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) {
    pageErrors.push(message.text());
  }
});
// 401 (before the token is given) and 400 (the bad payload) are part of the path, and so
// is a 404 for one job read just as it was deleted (the page drops its row); a missing
// route or a server error is not.
const JOB_READ = /\/jobs\/[0-9a-f-]{36}$/;
page.on("response", (response) => {
  const deletedJob = response.status() === 404 && response.request().method() === "GET"
    && JOB_READ.test(new URL(response.url()).pathname);
  if ((response.status() === 404 && !deletedJob) || response.status() >= 500) {
    pageErrors.push(`${response.request().method()} ${response.url()} answered ${response.status()}`);
  }
});

// SCREENSHOT's path with `-what` before its extension.
function screenshot(what) {
  return process.env.SCREENSHOT.replace(/(\.png)?$/, `-${what}.png`);
}

function ok(what) {
  console.log(`ok - ${what}`);
}

const row = (id) => page.locator(`tr.job[data-id="${id}"]`);
async function waitForStatus(id, status) {
  await page.waitForFunction(
    ([id, status]) => document.querySelector(`tr.job[data-id="${id}"]`)?.dataset.status === status,
    [id, status]);
}

async function submit(type, payload) {
  await page.selectOption("#type", type);
  await page.fill("#payload", payload);
  await page.click("#submit");
}

// Submits over the API as a client that knows only type names would: by ids.
async function post(body) {
  const response = await fetch(new URL("jobs", url + "/"), {
    method: "POST",
    headers: Object.assign({ "Content-Type": "application/json" }, token ? { Authorization: `Bearer ${token}` } : {}),
    body: JSON.stringify(body),
  });
  const answer = await response.json();
  if (response.status !== 201) throw new Error(`POST /jobs ${JSON.stringify(body)} answered ${response.status}: ${JSON.stringify(answer)}`);
  return answer.id;
}

// Records every status each member of the open flow shows, and every progress text.
async function watchFlow() {
  await page.evaluate(() => {
    window.seenFlow = { statuses: {}, finished: [] };
    const record = () => {
      for (const card of document.querySelectorAll("#flow-steps .member")) {
        const seen = (window.seenFlow.statuses[card.dataset.id] ||= []);
        if (card.dataset.status && seen[seen.length - 1] !== card.dataset.status) seen.push(card.dataset.status);
      }
      const text = document.querySelector("#flow-finished").textContent;
      if (window.seenFlow.finished[window.seenFlow.finished.length - 1] !== text) window.seenFlow.finished.push(text);
    };
    new MutationObserver(record).observe(document.querySelector("#flow-dialog"),
      { subtree: true, childList: true, characterData: true, attributes: true, attributeFilter: ["data-status"] });
  });
}

const card = (id) => page.locator(`#flow-steps .member[data-id="${id}"]`);
async function waitForCard(id, status) {
  await page.waitForFunction(([id, status]) =>
    document.querySelector(`#flow-steps .member[data-id="${id}"]`)?.dataset.status === status, [id, status]);
}

async function submitJob(type, payload) {
  const before = await page.evaluate(
    () => document.querySelector("#submit-message [data-job-id]")?.dataset.jobId ?? null);
  await submit(type, payload);
  await page.waitForFunction((before) => {
    const node = document.querySelector("#submit-message [data-job-id]");
    return node && node.dataset.jobId !== before;
  }, before);
  return page.locator("#submit-message [data-job-id]").getAttribute("data-job-id");
}

try {
  await page.goto(url);
  if (token) {
    await page.locator("#token-dialog").waitFor({ state: "visible" });
    await page.fill("#token", token);
    await page.click("#token-save");
    ok("the page asked for the API token and went on with it");
  }
  await page.locator("#live.on").waitFor();
  await page.locator('#type option[value="Steps"]').waitFor({ state: "attached" });
  ok("the page loaded the catalog and connected to the event stream");

  await page.selectOption("#type", "Steps");
  const prefilled = JSON.parse(await page.inputValue("#payload"));
  if (!("steps" in prefilled) || !("delayMs" in prefilled)) {
    throw new Error(`the form was not prefilled from the schema: ${JSON.stringify(prefilled)}`);
  }
  ok("choosing a type prefilled the payload from its JSON Schema");

  // Record every percentage each row shows, to see progress move without a reload.
  await page.evaluate(() => {
    window.seenProgress = {};
    const record = () => {
      for (const r of document.querySelectorAll("tr.job")) {
        const pct = r.querySelector(".pct")?.textContent;
        (window.seenProgress[r.dataset.id] ||= []).includes(pct) || window.seenProgress[r.dataset.id].push(pct);
      }
    };
    new MutationObserver(record).observe(document.body, { subtree: true, childList: true, characterData: true });
  });
  const succeeded = await submitJob("Steps", '{"steps": 5, "delayMs": 250}');
  await row(succeeded).waitFor();
  await waitForStatus(succeeded, "Succeeded");
  await page.locator(`tr.job[data-id="${succeeded}"] .pct`).filter({ hasText: "100%" }).waitFor();
  const seen = await page.evaluate((id) => window.seenProgress[id], succeeded);
  const between = seen.filter((p) => p !== "0%" && p !== "100%");
  if (between.length < 2) throw new Error(`progress did not move live: saw ${seen.join(", ")}`);
  ok(`a submitted job appeared, its progress bar moved live (${seen.join(" → ")}) and it succeeded`);

  await row(succeeded).click();
  await page.locator(`tr.details[data-details-for="${succeeded}"] .result`).filter({ hasText: '"done": 5' }).waitFor();
  ok("opening the succeeded job showed its result");

  const canceled = await submitJob("Wait", "null");
  await waitForStatus(canceled, "Running");
  await page.locator(`tr.job[data-id="${canceled}"] .pct`).filter({ hasText: "10%" }).waitFor();
  await page.click(`tr.job[data-id="${canceled}"] button.cancel`);
  await waitForStatus(canceled, "Canceled");
  ok("the cancel button stopped a running job, which showed as Canceled");

  const hostile = process.env.HOSTILE || "disk on fire";
  const failed = await submitJob("Explode", JSON.stringify({ message: hostile }));
  await waitForStatus(failed, "Failed");
  await page.locator(`tr.job[data-id="${failed}"] .job-error`).filter({ hasText: "disk on fire" }).waitFor();
  const shown = await page.locator(`tr.job[data-id="${failed}"] .job-error`).textContent();
  if (shown !== hostile) throw new Error(`the error shows as ${JSON.stringify(shown)}`);
  if (await page.evaluate(() => window.pwned !== undefined || document.querySelector("tr.job img") !== null)) {
    throw new Error("markup in a job's error was run as HTML");
  }
  ok("a failing job showed as Failed with its error message, markup in it shown as text");

  const retried = await submitJob("Retry", "null");
  await waitForStatus(retried, "Succeeded");
  await row(retried).click();
  await page.locator(`tr.details[data-details-for="${retried}"] .attempt-errors`)
    .filter({ hasText: "first attempt lost its connection" }).waitFor();
  await page.locator(`tr.job[data-id="${retried}"]`).filter({ hasText: "attempt 2" }).waitFor();
  ok("a job that failed once and was retried shows its second attempt and the first one's error");

  await submit("Steps", '{"steps": "many"}');
  await page.locator("#submit-message.error").filter({ hasText: "invalid" }).waitFor();
  await submit("Steps", "{oops");
  await page.locator("#submit-message.error").filter({ hasText: "not valid JSON" }).waitFor();
  ok("an invalid payload and malformed JSON were refused with a message, nothing submitted");

  await page.click('#status-filter button[data-status="Failed"]');
  await page.waitForFunction((id) => {
    const rows = [...document.querySelectorAll("tr.job")];
    return rows.length > 0 && rows.every((r) => r.dataset.status === "Failed")
      && rows.some((r) => r.dataset.id === id);
  }, failed);
  await page.click('#status-filter button[data-status=""]');
  await row(succeeded).waitFor();
  ok("the status filter showed only failed jobs, and All brought the others back");

  // ---- the operator's console ----
  await page.locator('tr.queue[data-queue="default"] .worker').filter({ hasText: "4 workers" }).waitFor();
  ok("the queues view shows the default queue and the process serving it with its 4 workers");

  // The minute under way and its count; a minute may end while the job runs, and its
  // finish then counts in the next one.
  const lastMinute = () => page.evaluate(() => {
    const bars = document.querySelectorAll("#chart g.minute");
    if (!bars.length) return null;
    const bar = bars[bars.length - 1];
    return { minute: Date.parse(bar.dataset.minute), succeeded: Number(bar.dataset.succeeded) };
  });
  const before = await lastMinute();
  if (before === null) throw new Error("the chart drew no minutes");
  const quick = await submitJob("Steps", '{"steps": 1, "delayMs": 10}');
  await waitForStatus(quick, "Succeeded");
  await page.waitForFunction((before) => {
    const bars = document.querySelectorAll("#chart g.minute");
    const bar = bars[bars.length - 1];
    const minute = Date.parse(bar.dataset.minute);
    const succeeded = Number(bar.dataset.succeeded);
    return minute === before.minute ? succeeded > before.succeeded : minute > before.minute && succeeded > 0;
  }, before);
  const now = await lastMinute();
  ok(`the throughput chart's current minute went up live (${before.succeeded} → ${now.succeeded} succeeded${now.minute === before.minute ? "" : ", in the next minute"})`);

  // Retry a failed job from its row: it runs again and fails again, at attempt 2.
  await page.click(`tr.job[data-id="${failed}"] button.retry`);
  await page.locator(`tr.job[data-id="${failed}"]`).filter({ hasText: "attempt 2" }).waitFor();
  await waitForStatus(failed, "Failed");
  ok("the retry button queued the failed job again; it ran a second attempt");

  // Its page, found by id: both attempts on the timeline, each with its error.
  await page.fill("#find-id", "not-an-id");
  await page.click("#find");
  await page.locator("#find-message.error").filter({ hasText: "UUID" }).waitFor();
  await page.fill("#find-id", failed);
  await page.click("#find");
  await page.locator("#job-dialog[open]").waitFor();
  await page.waitForFunction(() => document.querySelectorAll("#job-timeline li.Failed").length === 2);
  const timeline = await page.locator("#job-timeline").textContent();
  if (!timeline.includes("Attempt 1") || !timeline.includes("Attempt 2") || !timeline.includes("disk on fire")) {
    throw new Error(`the timeline shows ${JSON.stringify(timeline)}`);
  }
  ok("find by id opened the job's page, its two attempts on a timeline with their errors");
  await page.click("#job-delete");
  await page.locator("#job-message.ok").filter({ hasText: "Deleted" }).waitFor();
  await page.click("#job-close");
  await row(failed).waitFor({ state: "detached" });
  ok("the job's page deleted it, and its row left the list");

  // A queue nothing serves: it shows in the queues view, and the queue filter finds it.
  await page.fill("#queue", "reports");
  const parked = await submitJob("Steps", '{"steps": 1}');
  await page.fill("#queue", "");
  await page.locator('tr.queue[data-queue="reports"] .queued').filter({ hasText: "1" }).waitFor();
  await page.locator('tr.queue[data-queue="reports"] .workers').filter({ hasText: "nothing runs" }).waitFor();
  await page.locator('#queue-filter option[value="reports"]').waitFor({ state: "attached" });
  await page.selectOption("#queue-filter", "reports");
  await page.waitForFunction((id) => {
    const rows = [...document.querySelectorAll("tr.job")];
    return rows.length === 1 && rows[0].dataset.id === id;
  }, parked);
  ok("a queue without workers shows its waiting job and says nothing serves it; the queue filter lists it alone");

  // Bulk: asked first with the count, refused once, then done.
  await page.click("#bulk-cancel");
  await page.locator("#confirm-dialog[open]").waitFor();
  const question = await page.locator("#confirm-title").textContent();
  if (question !== "Cancel 1 job?") throw new Error(`the bulk cancel asked ${JSON.stringify(question)}`);
  await page.click("#confirm-no");
  await page.locator("#bulk-message").filter({ hasText: "Nothing changed" }).waitFor();
  await page.click("#bulk-cancel");
  await page.click("#confirm-yes");
  await page.locator("#bulk-message").filter({ hasText: "1 of 1" }).waitFor();
  await waitForStatus(parked, "Canceled");
  await page.selectOption("#queue-filter", "");
  ok("bulk cancel by queue asked with the count, changed nothing when refused, then canceled the job");

  // Pause: the default queue's new job waits Queued until the queue is resumed.
  await page.click('tr.queue[data-queue="default"] button.pause');
  await page.locator('tr.queue[data-queue="default"] .state').filter({ hasText: "paused" }).waitFor();
  const held = await submitJob("Steps", '{"steps": 1}');
  await waitForStatus(held, "Queued");
  await page.locator('tr.queue[data-queue="default"] .queued').filter({ hasText: "1" }).waitFor();
  await page.fill("#find-id", held);
  await page.click("#find");
  await page.locator("#job-details").filter({ hasText: "waits on  queue default paused" }).waitFor();
  await page.click("#job-close");
  await page.click('tr.queue[data-queue="default"] button.resume');
  await waitForStatus(held, "Succeeded");
  await page.locator('tr.queue[data-queue="default"] button.pause').waitFor();
  ok("the pause button held the default queue's job Queued, its page said why, and resume ran it");

  const burst = [];
  for (let i = 0; i < 3; i++) burst.push(await submitJob("Explode", '{"message": "burst"}'));
  for (const id of burst) await waitForStatus(id, "Failed");
  await page.click('#status-filter button[data-status="Failed"]');
  await page.selectOption("#type-filter", "Explode");
  await page.click("#bulk-retry");
  await page.locator("#confirm-title").filter({ hasText: "Retry 3 jobs?" }).waitFor();
  await page.click("#confirm-yes");
  await page.locator("#bulk-message").filter({ hasText: "3 of 3" }).waitFor();
  await page.waitForFunction((ids) => ids.every((id) =>
    document.querySelector(`tr.job[data-id="${id}"]`)?.textContent.includes("attempt 2")), burst);
  await page.click("#bulk-delete");
  await page.locator("#confirm-title").filter({ hasText: "Delete 3 jobs?" }).waitFor();
  await page.click("#confirm-yes");
  await page.locator("#bulk-message").filter({ hasText: "3 of 3" }).waitFor();
  await page.waitForFunction(() => document.querySelectorAll("tr.job").length === 0);
  await page.click('#status-filter button[data-status=""]');
  await page.selectOption("#type-filter", "");
  await row(succeeded).waitFor();
  ok("bulk retry ran three failed jobs again, and bulk delete removed them, each after a confirmation");

  if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });

  // ---- flows ----
  // A chain submitted by ids in one flow: first, then second, then third after both.
  const flow = randomUUID();
  const first = await post({ type: "Steps", payload: { steps: 6, delayMs: 400 }, flow });
  const second = await post({ type: "Steps", payload: { steps: 2, delayMs: 200 }, dependsOn: [first], flow });
  const third = await post({ type: "Steps", payload: { steps: 1, delayMs: 50 }, dependsOn: [first, second], flow });
  await page.fill("#find-id", second);
  await page.click("#find");
  await page.locator("#job-dialog[open]").waitFor();
  await page.locator(`#job-details .parents a[data-job-id="${first}"]`).waitFor();
  await page.locator(`#job-details .children a[data-job-id="${third}"]`).waitFor();
  if (process.env.SCREENSHOT) await page.screenshot({ path: screenshot("job") });
  await watchFlow();
  await page.click("#job-flow");
  await page.locator("#flow-dialog[open]").waitFor();
  await page.locator("#job-dialog[open]").waitFor({ state: "detached" });
  if (!(await page.evaluate(() => location.hash)).startsWith("#flow=")) throw new Error("the flow page has no address of its own");
  ok("a job's page links to the jobs it waits for, those waiting for it, and its flow, which opens");

  await waitForCard(first, "Running");
  const steps = await page.locator("#flow-steps .flow-step").count();
  if (steps !== 3) throw new Error(`the chain shows as ${steps} steps`);
  const short = (id) => `${id.slice(0, 8)}…${id.slice(-4)}`;
  const after = await card(third).locator(".after").textContent();
  if (after !== `after Steps ${short(first)}, Steps ${short(second)}`) {
    throw new Error(`the last step says it runs ${JSON.stringify(after)}`);
  }
  if (process.env.SCREENSHOT) {
    // Best when a step has finished and the next runs; the run goes on if it was missed.
    await page.locator("#flow-finished").filter({ hasText: "1 of 3 finished" }).waitFor({ timeout: 5000 }).catch(() => {});
    await page.screenshot({ path: screenshot("flow") });
  }
  await page.locator("#flow-finished").filter({ hasText: "3 of 3 finished" }).waitFor();
  for (const id of [first, second, third]) await waitForCard(id, "Succeeded");
  const seenFlow = await page.evaluate(() => window.seenFlow);
  // The first step was running when the page opened; the others waited for it.
  for (const [id, from] of [[first, "Running"], [second, "Waiting"], [third, "Waiting"]]) {
    const seen = seenFlow.statuses[id] || [];
    if (!seen.includes(from) || seen[seen.length - 1] !== "Succeeded" || seen.length < 2) {
      throw new Error(`step ${id} showed ${seen.join(" → ")}, not ${from} → … → Succeeded`);
    }
  }
  if (!seenFlow.finished.some((text) => /^[012] of 3 finished$/.test(text))) {
    throw new Error(`the progress did not move live: ${seenFlow.finished.join(", ")}`);
  }
  if (await page.locator("#flow-cancel").isVisible()) throw new Error("a finished flow offers a cancel");
  ok(`the flow page showed three steps in order and their statuses live (last: ${seenFlow.statuses[third].join(" → ")}; ${seenFlow.finished.join(" → ")})`);

  await card(third).locator(".member-head a.job-link").click();
  await page.locator("#job-dialog[open]").waitFor();
  await page.locator("#job-id").filter({ hasText: third }).waitFor();
  await page.locator(`#job-details .parents a[data-job-id="${second}"]`).waitFor();
  await page.click("#job-close");
  ok("a step of the flow opens the job's page");

  // A flow canceled from its page, opened by its address: a running job asked to stop,
  // and the one waiting for it canceled at once.
  const doomed = randomUUID();
  const holding = await post({ type: "Wait", flow: doomed });
  const waiting = await post({ type: "Steps", payload: { steps: 1 }, dependsOn: [holding], flow: doomed });
  await page.evaluate((id) => { location.hash = `#flow=${id}`; }, doomed);
  await page.locator("#flow-dialog[open]").waitFor();
  await waitForCard(holding, "Running");
  await waitForCard(waiting, "Waiting");
  await page.locator("#flow-finished").filter({ hasText: "0 of 2 finished" }).waitFor();
  await page.click("#flow-cancel");
  await page.locator("#confirm-dialog[open]").waitFor();
  const asked = await page.locator("#confirm-title").textContent();
  if (asked !== "Cancel 2 jobs of this flow?") throw new Error(`the flow's cancel asked ${JSON.stringify(asked)}`);
  await page.click("#confirm-yes");
  await page.locator("#flow-message").filter({ hasText: "1 canceled, 1 running asked to stop." }).waitFor();
  await waitForCard(waiting, "Canceled");
  await waitForCard(holding, "Canceled");
  await page.locator("#flow-finished").filter({ hasText: "2 of 2 finished" }).waitFor();
  await page.locator("#flow-cancel").waitFor({ state: "hidden" });
  await page.click("#flow-close");
  ok("the cancel-flow button asked with the count, then canceled the waiting step and stopped the running one");

  if (pageErrors.length) throw new Error(`the page reported errors: ${pageErrors.join("; ")}`);
  console.log(`RESULT ${JSON.stringify({ succeeded, canceled, failed, parked, burst,
    flow, chain: [first, second, third], doomed, doomedJobs: [holding, waiting] })}`);
} catch (error) {
  console.error(`not ok - ${error.message}`);
  if (pageErrors.length) console.error(`page errors: ${pageErrors.join("; ")}`);
  if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true }).catch(() => {});
  process.exitCode = 1;
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}

// Drives the dashboard in headless Chromium; run by jobs-http/tests/dashboard.rs, which
// starts the server with the job types used here and checks the store afterwards.
//
//   node dashboard.mjs <url>   (env: CHROMIUM = the browser, JOBS_TOKEN, HOSTILE = an error
//                               message with markup, SCREENSHOT = a .png path)
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
// 401 (before the token is given) and 400 (the bad payload) are part of the path; a
// missing route or a server error is not.
page.on("response", (response) => {
  if (response.status() === 404 || response.status() >= 500) {
    pageErrors.push(`${response.request().method()} ${response.url()} answered ${response.status()}`);
  }
});

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

  if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
  if (pageErrors.length) throw new Error(`the page reported errors: ${pageErrors.join("; ")}`);
  console.log(`RESULT ${JSON.stringify({ succeeded, canceled, failed })}`);
} catch (error) {
  console.error(`not ok - ${error.message}`);
  if (pageErrors.length) console.error(`page errors: ${pageErrors.join("; ")}`);
  if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true }).catch(() => {});
  process.exitCode = 1;
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}

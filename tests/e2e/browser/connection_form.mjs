// Add an `azure_storage_queue` connection through the Airflow UI and press its Test button.
//
// Run by tests/e2e/test_e2e_browser.py with node; drives Debian's /usr/bin/chromium through
// playwright-core (which never downloads a browser). Input (environment):
//   AIRFLOW_URL, AIRFLOW_USERNAME, AIRFLOW_PASSWORD  the UI and its simple-auth-manager login
//   AZURE_CONNECTION_STRING                           what to type into "Connection string"
//   CONN_ID                                           the connection id to create
//   SCREENSHOT_FORM, SCREENSHOT_RESULT                where to save the screenshots
// Output: one JSON line on stdout with what was seen (the pytest test makes the assertions);
// exit code 1 with a message on stderr when a step cannot be done at all.

import { chromium } from 'playwright-core';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const url = env('AIRFLOW_URL');
const connId = env('CONN_ID');
const STEP_TIMEOUT = 120_000; // a hang guard: the UI answers slowly on a busy machine

const result = { steps: [], fields: { standard: [], extra: [] }, tests: [] };
const step = (name) => {
  result.steps.push(name);
  process.stderr.write(`browser: ${name}\n`);
};

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1500 } });
  page.setDefaultTimeout(STEP_TIMEOUT);

  step('log in');
  await page.goto(`${url}/`);
  await page.getByLabel('Username').fill(env('AIRFLOW_USERNAME'));
  await page.getByLabel('Password').fill(env('AIRFLOW_PASSWORD'));
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL((u) => !u.pathname.startsWith('/auth'));

  step('Admin > Connections');
  await page.getByRole('button', { name: 'Admin' }).click();
  await page.getByRole('menuitem', { name: 'Connections' }).click();
  await page.waitForURL((u) => u.pathname.endsWith('/connections'));

  step('Add Connection: id and type');
  await page.getByRole('button', { name: 'Add Connection' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByLabel('Connection ID').fill(connId);
  await dialog.getByRole('combobox').click();
  await page.keyboard.type('Azure Queue');
  await page.getByRole('option', { name: 'Azure Queue Storage', exact: true }).click();

  step('read the form fields');
  const labels = async () =>
    (await dialog.locator('label:visible').allInnerTexts()).map((t) => t.replace('*', '').trim()).filter(Boolean);
  await dialog.getByText('Account name or account URL').waitFor();
  result.fields.standard = await labels();
  await dialog.getByRole('button', { name: 'Extra Fields', exact: true }).click();
  await dialog.getByText('Queue endpoint').waitFor();
  result.fields.extra = (await labels()).filter((l) => !result.fields.standard.includes(l));
  // What the extra fields hold before anything is typed: the defaults the form got.
  result.fields.defaults = {};
  for (const input of await dialog.locator('input[name^="element_"]').all()) {
    const name = (await input.getAttribute('name')).slice('element_'.length);
    result.fields.defaults[name] = await input.inputValue();
  }

  step('fill in the connection string');
  // The UI's label is not tied to its input (for= points elsewhere), so find the input by name.
  const connectionString = dialog.locator('input[name="element_connection_string"]');
  await connectionString.fill(env('AZURE_CONNECTION_STRING'));
  result.fields.connection_string_input_type = await connectionString.getAttribute('type');
  await dialog.screenshot({ path: env('SCREENSHOT_FORM') });

  step('save');
  await dialog.getByRole('button', { name: 'Save' }).click();
  await dialog.waitFor({ state: 'hidden' });
  const row = page.getByRole('row').filter({ hasText: connId });
  await row.waitFor();

  const pressTest = async () => {
    const response = page.waitForResponse((r) => r.url().endsWith('/api/v2/connections/test'));
    await row.getByRole('button', { name: 'Test Connection' }).click();
    const answer = await response;
    const sent = answer.request().postDataJSON();
    const body = await answer.json();
    // The UI answers in a toast; wait for the one that goes with this response.
    const title = answer.ok() && body.status === true ? 'Test Connection Successful' : 'Test Connection Failed';
    const toast = page.getByRole('status').filter({ hasText: title }).first();
    let toastText;
    try {
      await toast.waitFor();
      toastText = (await toast.innerText()).trim();
    } catch {
      toastText = `no "${title}" toast; shown: ${JSON.stringify(await page.getByRole('status').allInnerTexts())}`;
    }
    const seen = {
      http_status: answer.status(),
      body,
      sent_port: sent.port,
      toast: toastText,
    };
    result.tests.push(seen);
    return seen;
  };

  step('press Test');
  let test = await pressTest();
  const uiPortBug =
    test.http_status === 400 &&
    test.sent_port === 0 &&
    String(test.body.detail).includes('host or port to test differs from the stored connection');
  if (uiPortBug) {
    // Airflow 3.3.2's list sends `port: Number(null)`, i.e. 0, for a connection without a port,
    // and its API refuses that as "a different endpoint". Send what the UI means (no port)
    // and press the same button again; everything else about the request is the UI's own.
    step('Airflow UI bug: it sent port 0 for a connection without a port; pressing Test again with port null');
    result.ui_port_bug = true;
    await page.route('**/api/v2/connections/test', async (route) => {
      const body = route.request().postDataJSON();
      if (body.port === 0) body.port = null;
      await route.continue({ postData: JSON.stringify(body) });
    });
    test = await pressTest();
  }
  await page.screenshot({ path: env('SCREENSHOT_RESULT') });
  step('done');
} catch (error) {
  result.error = String(error && error.stack ? error.stack : error);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(result) + '\n');
process.exit(result.error ? 1 : 0);

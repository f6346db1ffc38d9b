// Logging in through WordPress's own wp-login.php, shared by the browser tests.

/**
 * Logs `login` (password `<login>-password`, the test site's fixture) in through
 * wp-login.php in `page` and waits for `pageUrl`, where wp-login.php redirects.
 *
 * Now and then (twice in CI on 2026-12-01, once in a run by hand) WordPress answered the
 * form with "The password field is empty." although the field had been filled: the
 * password input was left out of the POST, most likely disabled for a moment by the login
 * page's own script (user-profile.js disables a password field it finds hidden). Logging
 * in is not what these tests are about, so after such an answer the form is sent once
 * more, with what WordPress said (its `#login_error`) printed; a second refusal fails.
 */
export async function logIn(page, site, login, pageUrl) {
  for (let attempt = 1; ; attempt++) {
    await page.goto(`${site}/wp-login.php?redirect_to=${encodeURIComponent(pageUrl)}`);
    // The form's own scripts (focus after 200 ms, the password field's toggle) settle first.
    await page.waitForLoadState("networkidle");
    await page.fill("#user_login", login);
    await page.fill("#user_pass", `${login}-password`);
    try {
      await Promise.all([page.waitForURL(pageUrl), page.click("#wp-submit")]);
      return;
    } catch (e) {
      const said = await page
        .textContent("#login_error", { timeout: 1000 })
        .catch(() => "(no #login_error on the page)");
      const why = `wp-login.php did not log ${login} in (attempt ${attempt}, at ${page.url()}): ${said.trim()}`;
      if (attempt >= 2) throw new Error(`${why}; ${e.message}`);
      console.log(`  ${why}; trying once more`);
    }
  }
}

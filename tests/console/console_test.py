"""The console in a real browser (headless Chromium driven by Playwright), against a server
started by tests/console.rs. It acts as a person would and writes what it saw to
$OUT/result.json; the Rust test checks the outcome through the API.

Environment: CONSOLE_URL (http://host:port), ADMIN_AKID/ADMIN_SECRET (may do everything),
KEYADMIN_ARN, KEYUSER_ARN, KEYUSER_AKID/KEYUSER_SECRET, OUT (a directory), SCREENSHOTS
(optional: where to write the README's screenshots), CHROMIUM (default /usr/bin/chromium).
"""

import json
import os
import re

from playwright.sync_api import expect, sync_playwright

from common import run, BASE, key_id_from_url, launch, sign_in

OUT = os.environ["OUT"]
SHOTS = os.environ.get("SCREENSHOTS", "")
result = {}


def shot(page, name):
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, name + ".png"), full_page=True)


def csrf_of(page):
    return page.locator("input[name=csrf]").first.get_attribute("value")


def main():
    with sync_playwright() as p:
        browser = launch(p)
        admin = browser.new_context(viewport={"width": 1360, "height": 860}, accept_downloads=True)
        page = admin.new_page()

        # Sign-in: a wrong secret is refused, the right one lands on the key list.
        page.goto(BASE + "/console/")
        expect(page).to_have_url(re.compile(r"/console/signin$"))
        shot(page, "signin")
        page.get_by_label("Access key ID").fill(os.environ["ADMIN_AKID"])
        page.get_by_label("Secret access key").fill("not-the-secret")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#signin-error")).to_contain_text("not valid")
        sign_in(page, os.environ["ADMIN_AKID"], os.environ["ADMIN_SECRET"])
        cookies = admin.cookies()
        session = [c for c in cookies if c["name"] == "kms_console"]
        assert session and session[0]["httpOnly"] and session[0]["sameSite"] == "Strict", cookies
        assert os.environ["ADMIN_SECRET"] not in page.content()

        # The wizard: a symmetric key with an administrator and a user.
        page.get_by_role("link", name="Create key").click()
        expect(page.get_by_role("heading", name="Configure key")).to_be_visible()
        page.locator("input[name=key_type][value=SYMMETRIC]").check()
        shot(page, "wizard-1-configure")
        page.locator("#next").click()
        expect(page.get_by_role("heading", name="Add labels")).to_be_visible()
        page.get_by_label("Alias").fill("console-demo")
        page.get_by_label(re.compile("^Description")).fill("Made in the console")
        page.get_by_label("Tag key 1").fill("project")
        page.get_by_label("Tag value 1").fill("console")
        shot(page, "wizard-2-labels")
        page.locator("#next").click()
        expect(page.get_by_role("heading", name="Define key administrative permissions")).to_be_visible()
        page.locator(f"input[name=admin][value='{os.environ['KEYADMIN_ARN']}']").check()
        expect(page.get_by_label("Allow key administrators to delete this key.")).to_be_checked()
        shot(page, "wizard-3-administrators")
        page.locator("#next").click()
        expect(page.get_by_role("heading", name="Define key usage permissions")).to_be_visible()
        page.locator(f"input[name=user][value='{os.environ['KEYUSER_ARN']}']").check()
        page.locator("#next").click()
        expect(page.get_by_role("heading", name="Review")).to_be_visible()
        result["review_policy"] = page.get_by_label("Key policy").input_value()
        shot(page, "wizard-5-review")
        page.locator("#finish").click()
        expect(page.locator(".flash-ok")).to_contain_text("alias/console-demo")
        key = key_id_from_url(page)
        result["symmetric_key"] = key
        shot(page, "key-policy")
        # While the policy is the console default: its administrators and users, editable.
        expect(page.locator("#dv-admin")).to_contain_text("(1)")
        expect(page.locator(".default-view")).to_contain_text(os.environ["KEYADMIN_ARN"])
        admin_arn = os.environ["KEYADMIN_ARN"].replace("key-admin", "dev-admin")
        page.locator("#add-user").select_option(admin_arn)
        page.locator("#add-user-button").click()
        expect(page.locator(".flash-ok")).to_contain_text("is now the key user")
        expect(page.locator("#dv-user")).to_contain_text("(2)")
        page.locator(f"form:has(input[name=principal][value='{admin_arn}']) button[value=user-remove]").click()
        expect(page.locator(".flash-ok")).to_contain_text("is no longer the key user")
        expect(page.locator("#dv-user")).to_contain_text("(1)")
        # The policy editor's text is validated by PutKeyPolicy; a malformed one stays in the
        # editor with the API's error.
        page.get_by_label("Key policy (JSON)").fill('{"Version": "2012-10-17", "Statement": [')
        page.locator("#save-policy").click()
        expect(page.locator(".flash-error")).to_contain_text("MalformedPolicyDocumentException")
        expect(page.get_by_label("Key policy (JSON)")).to_have_value('{"Version": "2012-10-17", "Statement": [')

        # Rotation on, with a period.
        page.locator("#tab-rotation").click()
        expect(page.locator("#rotation-status")).to_have_text("Disabled")
        page.get_by_label(re.compile("Rotation period")).fill("180")
        page.locator("#rotation-enable").click()
        expect(page.locator(".flash-ok")).to_contain_text("rotation is enabled")
        expect(page.locator("#rotation-status")).to_have_text("Enabled")
        page.locator("#rotate-now").click()
        expect(page.locator(".flash-ok")).to_contain_text("On-demand rotation")
        expect(page.locator("table.grid")).to_contain_text("ON_DEMAND")
        shot(page, "key-rotation")

        # A second alias and a tag.
        page.locator("#tab-aliases").click()
        page.get_by_label("New alias").fill("console-second")
        page.locator("#add-alias").click()
        expect(page.locator(".flash-ok")).to_contain_text("alias/console-second")
        expect(page.locator("table.grid")).to_contain_text("alias/console-second")
        page.get_by_label("New alias").fill("console-third")
        page.locator("#add-alias").click()
        page.locator("form:has(input[name=alias][value='alias/console-third']) button").click()
        expect(page.locator(".flash-ok")).to_contain_text("alias/console-third is deleted")
        expect(page.locator("table.grid")).not_to_contain_text("alias/console-third")
        page.locator("#tab-tags").click()
        page.get_by_label("Tag key").fill("team")
        page.get_by_label("Tag value").fill("payments")
        page.locator("#add-tag").click()
        expect(page.locator(".flash-ok")).to_contain_text("team")
        expect(page.locator("table.grid")).to_contain_text("payments")
        page.get_by_label("Tag key").fill("temporary")
        page.locator("#add-tag").click()
        page.locator("form:has(input[name=tag_key][value=temporary]) button").click()
        expect(page.locator(".flash-ok")).to_contain_text("temporary is removed")
        expect(page.locator("table.grid")).not_to_contain_text("temporary")
        page.locator("#description").fill("Made and edited in the console")
        page.get_by_role("button", name="Save description").click()
        expect(page.locator(".flash-ok")).to_contain_text("description is saved")

        # Schedule deletion, then cancel it and enable the key again.
        page.get_by_text("Schedule key deletion").click()
        page.get_by_label(re.compile("Waiting period")).fill("7")
        page.locator("#schedule-deletion").click()
        expect(page.locator("#key-state")).to_have_text("PendingDeletion")
        shot(page, "key-pending-deletion")
        page.locator("#cancel-deletion").click()
        expect(page.locator("#key-state")).to_have_text("Disabled")
        page.locator("#enable").click()
        expect(page.locator("#key-state")).to_have_text("Enabled")

        # A POST without the CSRF token (or with a wrong one) is refused and changes nothing.
        csrf = csrf_of(page)
        r = page.request.post(f"{BASE}/console/keys/{key}", form={"action": "disable"})
        assert r.status == 403, r.status
        r = page.request.post(f"{BASE}/console/keys/{key}", form={"action": "disable", "csrf": "0" * 64})
        assert r.status == 403, r.status
        page.reload()
        expect(page.locator("#key-state")).to_have_text("Enabled")

        # An asymmetric signing key; its public key downloads as PEM.
        page.goto(BASE + "/console/create?step=1")
        page.locator("input[name=key_type][value=ASYMMETRIC]").check()
        page.locator("input[name=key_usage][value=SIGN_VERIFY]").check()
        page.locator("#key_spec").select_option("ECC_NIST_P256")
        page.locator("#next").click()
        page.get_by_label(re.compile("^Description")).fill("signing key")
        page.locator("#next").click()
        page.locator("#next").click()
        # Another account may use the key; a malformed id is refused on this step.
        page.get_by_label(re.compile("^Other AWS accounts")).fill("12345")
        page.locator("#next").click()
        expect(page.locator(".flash-error")).to_contain_text("not an AWS account ID")
        page.get_by_label(re.compile("^Other AWS accounts")).fill("444455556666")
        page.locator("#next").click()
        expect(page.get_by_role("heading", name="Review")).to_be_visible()
        page.locator("#finish").click()
        expect(page.locator(".flash-ok")).to_contain_text("was created")
        signer = key_id_from_url(page)
        result["signing_key"] = signer
        page.locator("#tab-public-key").click()
        expect(page.locator("#public-key")).to_contain_text("BEGIN PUBLIC KEY")
        shot(page, "key-public-key")
        with page.expect_download() as dl:
            page.locator("#download-pem").click()
        dl.value.save_as(os.path.join(OUT, "signing.pem"))

        # The key lists, with the filter.
        page.goto(BASE + "/console/keys")
        expect(page.locator("table.grid")).to_contain_text(key)
        expect(page.locator("table.grid")).to_contain_text(signer)
        shot(page, "key-list")
        for text in ["console-demo", "team=payments"]:  # an alias, a tag
            page.locator("#filter").fill(text)
            page.get_by_role("button", name="Filter").click()
            expect(page.locator("table.grid")).to_contain_text(key)
            expect(page.locator("table.grid")).not_to_contain_text(signer)
        # Columns are configurable.
        page.goto(BASE + "/console/keys")
        page.get_by_text("Preferences").click()
        page.get_by_label("Origin").uncheck()
        page.locator("#save-columns").click()
        expect(page.locator("table.grid thead")).not_to_contain_text("Origin")
        expect(page.locator("table.grid thead")).to_contain_text("Key spec")
        page.get_by_text("Preferences").click()
        page.get_by_label("Origin").check()
        page.locator("#save-columns").click()
        expect(page.locator("table.grid thead")).to_contain_text("Origin")
        # Paging through ListKeys' marker: one key per page.
        page.goto(BASE + "/console/keys?page_size=1")
        expect(page.locator("table.grid tbody tr")).to_have_count(1)
        first = page.locator("table.grid tbody").inner_text()
        page.locator("#next-page").click()
        expect(page.locator("table.grid tbody tr")).to_have_count(1)
        second = page.locator("table.grid tbody").inner_text()
        assert first != second and {key, signer} <= set(re.findall(r"[0-9a-f-]{36}", first + second))
        expect(page.locator("#next-page")).to_have_count(0)
        page.goto(BASE + "/console/keys?page_size=25")
        page.get_by_role("link", name="AWS managed keys").click()
        expect(page.locator("table.grid")).to_contain_text("No AWS managed keys")
        page.get_by_role("link", name="Custom key stores").click()
        expect(page.locator("table.grid")).to_contain_text("No custom key stores")

        # Keys are regional: another region's list does not show them.
        page.get_by_label("Region").select_option("eu-west-1")
        page.get_by_role("button", name="Switch").click()
        expect(page.locator("table.grid")).to_contain_text("No keys")
        page.get_by_label("Region").select_option("us-east-1")
        page.get_by_role("button", name="Switch").click()
        expect(page.locator("table.grid")).to_contain_text(key)

        # A multi-Region key: the wizard's Regionality choice (in the advanced options).
        page.goto(BASE + "/console/create?step=1")
        page.get_by_text("Advanced options").click()
        page.locator("input[name=regionality][value=MULTI]").check()
        for _ in range(4):
            page.locator("#next").click()
        expect(page.get_by_role("heading", name="Review")).to_be_visible()
        expect(page.locator("main")).to_contain_text("Multi-Region key")
        page.locator("#finish").click()
        expect(page.locator(".flash-ok")).to_contain_text("was created")
        mrk = key_id_from_url(page)
        assert mrk.startswith("mrk-"), mrk
        expect(page.locator("#key-regionality")).to_have_text("Multi-Region primary key")
        result["multi_region_key"] = mrk

        # Sign-out ends the session: its cookie and token can no longer act or read.
        page.goto(f"{BASE}/console/keys/{key}")
        csrf = csrf_of(page)
        old = admin.cookies()
        page.locator("#signout").click()
        expect(page).to_have_url(re.compile(r"/console/signin$"))
        replay = browser.new_context()
        replay.add_cookies(old)
        r = replay.request.post(f"{BASE}/console/keys/{key}", form={"action": "disable", "csrf": csrf})
        assert r.status == 403, r.status
        rp = replay.new_page()
        rp.goto(f"{BASE}/console/keys/{key}")
        expect(rp).to_have_url(re.compile(r"/console/signin$"))
        replay.close()

        # The key user may read the key but not change its policy: the API's refusal shows.
        user = browser.new_context()
        up = user.new_page()
        sign_in(up, os.environ["KEYUSER_AKID"], os.environ["KEYUSER_SECRET"])
        up.goto(f"{BASE}/console/keys/{key}?tab=policy")
        policy = up.get_by_label("Key policy (JSON)")
        text = policy.input_value()
        assert "Allow use of the key" in text, text
        policy.fill(text.replace("Allow use of the key", "Allow use of the key by anyone"))
        up.locator("#save-policy").click()
        expect(up.locator(".flash-error")).to_contain_text("AccessDeniedException")
        result["user_refusal"] = up.locator(".flash-error").first.inner_text()
        # The edited text stays in the editor.
        expect(up.get_by_label("Key policy (JSON)")).to_have_value(re.compile("by anyone"))
        shot(up, "key-policy-refused")
        user.close()
        browser.close()

    with open(os.path.join(OUT, "result.json"), "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    run(main, "console browser test")

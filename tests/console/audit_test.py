"""The audit view in a real browser: the administrator (allowed cloudtrail:LookupEvents)
edits a key's description in the console, finds that event for that key in the audit trail,
filters by key and by event name, sees the chain intact; a key user without LookupEvents is
refused; a record edited in the trail's file shows the verification failure.

Environment as console_test.py, plus KEY_ID (a key made through the API), AUDIT_DIR (the
server's audit directory), KEYUSER_AKID/KEYUSER_SECRET; writes $OUT/audit.json.
"""

import json
import os

from playwright.sync_api import expect, sync_playwright

from common import run, BASE, launch, sign_in

SHOTS = os.environ.get("SCREENSHOTS", "")


def tamper(audit_dir):
    """Alter one record of the oldest file in place (same length, so appends go on)."""
    files = sorted(f for f in os.listdir(audit_dir) if f.startswith("audit-") and f.endswith(".jsonl"))
    path = os.path.join(audit_dir, files[0])
    with open(path, "r+b") as f:
        data = f.read()
        at = data.index(b'"eventName":"CreateKey"')
        f.seek(at)
        f.write(b'"eventName":"CreateKeY"')
        f.flush()
        os.fsync(f.fileno())
    return files[0]


def main():
    key = os.environ["KEY_ID"]
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_context(viewport={"width": 1360, "height": 860}).new_page()
        sign_in(page, os.environ["ADMIN_AKID"], os.environ["ADMIN_SECRET"])

        # Something done to the key through the console.
        page.goto(BASE + "/console/keys/" + key)
        page.locator("#description").fill("Seen in the audit trail")
        page.get_by_role("button", name="Save description").click()
        expect(page.locator(".flash-ok")).to_contain_text("description is saved")

        page.get_by_role("link", name="Audit trail").click()
        expect(page.get_by_role("heading", name="Audit trail")).to_be_visible()
        expect(page.locator("#verification")).to_contain_text("chain intact")
        row = page.locator("#audit tbody tr", has_text="UpdateKeyDescription").first
        expect(row).to_contain_text(key)
        expect(row).to_contain_text("kms-bridge-console")
        expect(row).to_contain_text("Success")
        # Intent records are hidden by default.
        expect(page.locator("#audit .badge", has_text="intent")).to_have_count(0)

        # Filter by key: every row names that key.
        page.locator("#key").fill(key)
        page.locator("#apply").click()
        rows = page.locator("#audit tbody tr")
        assert rows.count() >= 2, rows.count()
        for i in range(rows.count()):
            expect(rows.nth(i)).to_contain_text(key)
        # And by event name.
        page.locator("#event").fill("UpdateKeyDescription")
        page.locator("#apply").click()
        rows = page.locator("#audit tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("UpdateKeyDescription")
        # With intent records: the change's intent shows too.
        page.locator("#intents").check()
        page.locator("#apply").click()
        expect(page.locator("#audit tbody tr")).to_have_count(2)
        expect(page.locator("#audit .badge", has_text="intent")).to_have_count(1)
        assert "intents=on" in page.url, page.url

        page.goto(BASE + "/console/audit")
        expect(page.locator("#verification")).to_contain_text("chain intact")
        if SHOTS:
            page.screenshot(path=os.path.join(SHOTS, "audit.png"), full_page=False)

        # A tampered trail: the verification failure is shown.
        altered = tamper(os.environ["AUDIT_DIR"])
        page.reload()
        failure = page.locator("#verification")
        expect(failure).to_contain_text("Verification failed")
        expect(failure).to_contain_text("altered")
        expect(failure).to_contain_text(altered)
        failure_text = failure.inner_text()

        # A key user without cloudtrail:LookupEvents is refused.
        user = browser.new_context().new_page()
        sign_in(user, os.environ["KEYUSER_AKID"], os.environ["KEYUSER_SECRET"])
        answer = user.goto(BASE + "/console/audit")
        assert answer.status == 403, answer.status
        refusal = user.locator("#audit-error")
        expect(refusal).to_contain_text("AccessDeniedException")
        expect(refusal).to_contain_text("is not authorized to perform: cloudtrail:LookupEvents")
        expect(user.locator("#audit")).to_have_count(0)
        refusal_text = refusal.inner_text()
        browser.close()
    with open(os.path.join(os.environ["OUT"], "audit.json"), "w") as f:
        json.dump({"failure": failure_text, "refusal": refusal_text}, f)


if __name__ == "__main__":
    run(main, "console audit test")

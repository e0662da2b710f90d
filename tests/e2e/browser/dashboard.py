"""The dashboard in a real browser: headless Chromium driven by Playwright.

Started by tests/e2e/tests/dashboard.rs with a platform running helloworld and a service
(hello-rt) deployed by `micro run`, and an account `ada` that administers namespace `team`.

    MICRO_WEB          the dashboard's address (host:port)
    MICRO_CHROMIUM     the browser (default /usr/bin/chromium, Debian's)
    MICRO_SCREENSHOTS  a directory to save the main pages' screenshots in (optional)

Each step prints its name first, so a failure says where it happened.
"""

import os
import sys

from playwright.sync_api import expect, sync_playwright

WEB = "http://" + os.environ["MICRO_WEB"]
CHROMIUM = os.environ.get("MICRO_CHROMIUM", "/usr/bin/chromium")
SHOTS = os.environ.get("MICRO_SCREENSHOTS")


def step(name):
    print("step:", name, flush=True)


def shot(page, name):
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, name + ".png"), full_page=True)


def log_in(page, username, password, namespace=None):
    page.goto(WEB + "/login")
    expect(page).to_have_title("Log in · Micro")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    if namespace:
        page.get_by_label("Namespace").fill(namespace)
    shot(page, "login")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("header")).to_contain_text("signed in as " + username)


def main():
    expect.set_options(timeout=30_000)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1100, "height": 760})
        page = context.new_page()

        step("a stranger sees the login link, not a session")
        page.goto(WEB + "/")
        expect(page.get_by_role("link", name="Log in")).to_be_visible()

        step("log in as admin")
        log_in(page, "admin", "micro")
        cookies = {c["name"]: c for c in context.cookies()}
        for name in ("micro-session", "micro-csrf"):
            assert cookies[name]["httpOnly"], f"{name} is not HttpOnly"
            assert cookies[name]["sameSite"] == "Strict", f"{name} is not SameSite=Strict"
        assert "micro-token" not in cookies and "micro-refresh" not in cookies, "tokens left the server"
        assert page.evaluate("document.cookie") == "", "a script can read the session"

        step("find helloworld")
        page.get_by_label("Find a service").fill("hello")
        page.get_by_role("button", name="Search").click()
        expect(page.get_by_role("link", name="store", exact=True)).to_have_count(0)
        page.get_by_role("link", name="helloworld", exact=True).click()
        expect(page.locator("h1")).to_have_text("helloworld")
        expect(page.get_by_role("cell", name="127.0.0.1", exact=False).first).to_be_visible()

        step("call Helloworld.Call from its form")
        page.get_by_role("link", name="Call Helloworld.Call").click()
        expect(page).to_have_title("Call Helloworld.Call · Micro")
        page.get_by_label("name").fill("Ada")
        page.get_by_role("button", name="Call").click()
        expect(page.locator("#response")).to_contain_text('"Hello Ada"')
        expect(page.locator("#micro-line")).to_have_text(
            """micro call helloworld Helloworld.Call '{"name":"Ada"}'"""
        )
        expect(page.locator("#curl-line")).to_contain_text("/helloworld/Helloworld/Call")
        shot(page, "call")

        step("a bad number is a message, not a crash")
        page.goto(WEB + "/service/helloworld/call/Helloworld.Stream")
        page.get_by_label("Request as JSON").fill('{"count": "many"}')
        page.get_by_role("button", name="Call").click()
        expect(page.get_by_role("alert")).to_contain_text("count")

        step("stream Helloworld.Stream")
        page.goto(WEB + "/service/helloworld/call/Helloworld.Stream")
        page.get_by_label("Request as JSON").fill("")
        page.get_by_label("count").fill("3")
        page.get_by_role("button", name="Call").click()
        expect(page.locator(".message")).to_have_count(3)
        expect(page.locator(".message").nth(2)).to_contain_text('"count": 2')
        expect(page.locator("#stream-end")).to_be_visible()

        step("the service's charts show the calls just made")
        page.goto(WEB + "/service/helloworld")
        expect(page.get_by_role("img", name="Requests over the last 5 minutes").first).to_be_visible()
        expect(page.get_by_role("heading", name="Helloworld.Call")).to_be_visible()
        expect(page.get_by_role("heading", name="Helloworld.Stream")).to_be_visible()
        shot(page, "service")

        step("write and read a store key")
        page.get_by_role("navigation").get_by_role("link", name="Store").click()
        page.get_by_label("Key", exact=True).fill("dash-key")
        page.get_by_label("Value").fill("written from a browser")
        page.get_by_role("button", name="Write").click()
        expect(page.locator("#value")).to_have_text("written from a browser")
        page.get_by_role("navigation").get_by_role("link", name="Store").click()
        page.get_by_role("link", name="micro", exact=True).last.click()
        page.get_by_role("link", name="micro", exact=True).last.click()
        page.get_by_label("Keys starting with").fill("dash")
        page.get_by_role("button", name="Find keys").click()
        expect(page.locator("#keys li")).to_have_count(1)
        page.get_by_role("link", name="dash-key").click()
        expect(page.locator("#value")).to_have_text("written from a browser")
        shot(page, "store")

        step("the runtime's status, and a service's logs followed live")
        page.get_by_role("navigation").get_by_role("link", name="Runtime").click()
        expect(page.get_by_role("cell", name="hello-rt", exact=True)).to_be_visible()
        expect(page.get_by_role("cell", name="running", exact=True)).to_be_visible()
        shot(page, "runtime")
        page.get_by_role("link", name="Follow the logs of hello-rt").click()
        expect(page.locator("#logs")).not_to_be_empty()
        other = context.new_page()
        other.goto(WEB + "/service/hello-rt/call/HelloRt.Call")
        other.get_by_label("name").fill("Grace")
        other.get_by_role("button", name="Call").click()
        expect(other.locator("#response")).to_contain_text("Hello Grace")
        expect(page.locator("#logs")).to_contain_text("request for Grace")
        shot(page, "logs")
        page.close()
        page = other

        step("config and auth pages")
        page.get_by_role("navigation").get_by_role("link", name="Config").click()
        expect(page.locator("#config")).to_contain_text("[secret]")
        expect(page.locator("#config")).not_to_contain_text("hunter2")
        page.get_by_role("navigation").get_by_role("link", name="Events").click()
        page.get_by_role("link", name="orders", exact=True).click()
        expect(page.locator(".event").first).to_contain_text('"order":1')
        page.goto(WEB + "/auth")
        expect(page.get_by_role("cell", name="ada", exact=True)).to_have_count(0)
        page.get_by_label("Id", exact=True).first.fill("bob")
        page.get_by_label("Secret").fill("bob-secret")
        page.get_by_role("button", name="Create account").click()
        expect(page.get_by_role("cell", name="bob", exact=True).first).to_be_visible()
        page.get_by_role("button", name="Delete account bob").click()
        expect(page.get_by_role("cell", name="bob", exact=True)).to_have_count(0)
        shot(page, "auth")

        step("log out")
        page.get_by_role("button", name="Log out").click()
        expect(page).to_have_title("Log in · Micro")
        response = page.goto(WEB + "/auth")
        assert response.status == 401, f"/auth after logging out: {response.status}"

        step("another namespace's account sees nothing of micro")
        log_in(page, "ada", "ada-secret", namespace="team")
        expect(page.locator("header")).to_contain_text("namespace team")
        expect(page.get_by_role("link", name="helloworld")).to_have_count(0)
        response = page.goto(WEB + "/service/helloworld")
        assert response.status == 404, f"/service/helloworld for ada: {response.status}"
        response = page.goto(WEB + "/?namespace=micro")
        assert response.status == 403, f"micro's services for ada: {response.status}"
        response = page.goto(WEB + "/store?namespace=micro")
        assert response.status == 403, f"micro's store for ada: {response.status}"
        page.goto(WEB + "/store")
        expect(page.get_by_role("link", name="micro", exact=True)).to_have_count(0)
        response = page.goto(WEB + "/runtime")
        assert response.status == 403, f"the runtime for ada: {response.status}"

        browser.close()
    print("dashboard: every step passed", flush=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # the step printed last says where
        print(f"FAILED: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        sys.exit(1)

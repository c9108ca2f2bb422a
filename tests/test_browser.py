"""End to end in a real browser: log into the admin, edit a prompt's answer, and the next API call
returns the edit. Debian's chromium, driven by Selenium through Debian's chromedriver."""
from __future__ import annotations

import secrets
import shutil

import pytest

from .support import ask, leave_out_or_fail

pytestmark = pytest.mark.slow  # a real browser

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        leave_out_or_fail("chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-quic", "--window-size=1280,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(10)
    yield driver
    driver.quit()


def test_an_admin_edit_in_the_browser_is_the_next_api_answer(new_server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    srv = new_server()
    wait = WebDriverWait(browser, 20)
    password = secrets.token_urlsafe(16)
    srv.manage("createsuperuser", "--noinput", "--username", "qa-lead", "--email", "qa@example.com",
               env={"DJANGO_SUPERUSER_PASSWORD": password})
    assert ask(srv, "what is 2+2?") == "2+2 equals 9."

    browser.get(f"{srv.url}/admin/")
    assert "/admin/login/" in browser.current_url  # the admin requires login
    browser.find_element(By.NAME, "username").send_keys("qa-lead")
    browser.find_element(By.NAME, "password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit], button[type=submit]").click()
    wait.until(EC.presence_of_element_located((By.ID, "logout-form")))  # logged in

    browser.get(f"{srv.url}/admin/responses_app/cannedresponse/?q=2%2B2")
    browser.find_element(By.LINK_TEXT, "what is 2+2?").click()
    answer = browser.find_element(By.NAME, "answer")
    answer.clear()
    answer.send_keys("Four, edited in the browser.")
    browser.find_element(By.NAME, "_save").click()
    saved = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "ul.messagelist li.success")))
    assert "was changed successfully" in saved.text

    assert ask(srv, "what is 2+2?") == "Four, edited in the browser."
    history = srv.manage("shell", "-c", "from django.contrib.admin.models import LogEntry; "
                                        "e = LogEntry.objects.get(); print(e.user.username, e.get_change_message())")
    assert history.stdout.strip().splitlines()[-1] == "qa-lead Changed Answer."

"""Conversations over HTTP, as htmx and as a plain browser without JavaScript: the list, rename, delete,
export, regenerate and edit, the theme, one question at a time, and landing on the conversation's own URL."""

from __future__ import annotations

import re
import time

import httpx

from folyam.pages import LIST_PAGE
from tests.conftest import HTMX_HEADERS, ask, composer_form, form_fields
from tests.support.fake_upstream import FakeUpstream, Script
from tests.support.sse import read_events


def _finish(events_url: str, client: httpx.Client) -> None:
    read_events(client, events_url)


def _list_titles(html: str) -> list[str]:
    return re.findall(r'class="conversation__link" href="/chat/[^"]+" title="([^"]*)"', html)


def test_the_list_shows_the_sessions_conversations_newest_first(demo_server: str, client: httpx.Client) -> None:
    _finish(ask(client, demo_server, "First   question\nwith two lines"), client)
    _finish(ask(client, demo_server, "Second question"), client)
    page = client.get(demo_server + "/")
    assert _list_titles(page.text) == ["Second question", "First question with two lines"]
    assert 'aria-current="page"' not in page.text  # a new chat is not in the list yet

    with httpx.Client(timeout=10, headers=HTMX_HEADERS) as stranger:
        assert _list_titles(stranger.get(demo_server + "/").text) == []


def test_the_open_conversation_is_marked_current(demo_server: str, client: httpx.Client) -> None:
    _finish(ask(client, demo_server, "Mark me"), client)
    path = re.search(r'href="(/chat/[^"]+)"', client.get(demo_server + "/").text.split('id="conversation-list"')[1])
    assert path
    page = client.get(demo_server + path.group(1))
    assert re.search(r'href="' + re.escape(path.group(1)) + r'" title="Mark me" aria-current="page"', page.text)


def test_asking_with_htmx_refreshes_the_list_and_shows_stop(demo_server: str, client: httpx.Client) -> None:
    form = composer_form(client, demo_server + "/")
    response = client.post(demo_server + form.pop("action"), data={**form, "query": "Listed at once?"})
    assert response.status_code == 200
    # Asked from a new chat: the conversation joins the top of the list, marked current.
    assert '<hx-partial hx-target="#conversation-list" hx-swap="afterbegin"><li class="conversation' in response.text
    assert 'title="Listed at once?" aria-current="page"' in response.text
    assert re.search(
        r'id="composer-action" class="composer__action composer__stop" type="submit" formaction="/generations/',
        response.text,
    )
    assert '<hx-partial hx-target="#announcer" hx-swap="innerHTML">Answering…' in response.text
    _, events = read_events(client, demo_server + re.search(r'hx-sse:connect="([^"]+)"', response.text).group(1))
    last = events[-2].data
    # The answer's end puts Ask back, announces it briefly, and offers its actions.
    assert '<button id="composer-action" class="composer__action" type="submit">Ask</button>' in last
    assert re.search(r'hx-target="#announcer" hx-swap="innerHTML">Answer finished in \d+\.\d s', last)
    assert "Regenerate</button>" in last and 'class="answer__source"' in last


def test_a_question_from_another_page_lists_the_conversation_under_its_own_title(
    demo_server: str, client: httpx.Client
) -> None:
    """The question's response lists a conversation the page does not show under its stored title (renamed
    here), not under the question: the title the question's start found in the store. As a browser sends
    the composer (its model and instructions too: then the handler does not read the conversation first),
    and as an older page did (without them)."""
    _finish(ask(client, demo_server, "Original question"), client)
    page = client.get(demo_server + "/")
    path = re.search(r'class="conversation__link" href="(/chat/[^"]+)"', page.text)
    assert path
    form = composer_form(client, demo_server + path.group(1))
    action = form.pop("action")
    rename = client.post(
        demo_server + path.group(1) + "/rename", data={"title": "Renamed", "csrf_token": form["csrf_token"]}
    )
    assert rename.status_code == 200
    page = client.get(demo_server + path.group(1)).text
    model = re.search(r'<select id="composer-model" name="model">.*?<option value="([^"]+)" selected', page, re.S)
    assert model
    for extra, question in (({"model": model.group(1), "system_prompt": ""}, "Follow-up"), ({}, "Older page")):
        # Sent from the list page (a new chat), not the conversation's own page.
        response = client.post(
            demo_server + action,
            data={**form, **extra, "query": question, "request_id": question.replace(" ", "-").lower() + "-0001"},
            headers={"HX-Current-URL": demo_server + "/"},
        )
        assert response.status_code == 200
        assert 'title="Renamed" aria-current="page"' in response.text
        assert f'title="{question}"' not in response.text
        _finish(demo_server + re.search(r'hx-sse:connect="([^"]+)"', response.text).group(1), client)


def test_one_question_at_a_time_per_conversation(
    openai_server: str, upstream: FakeUpstream, client: httpx.Client
) -> None:
    upstream.script(Script(chunks=["slow"] * 3, delay=0.5), Script(chunks=["second"]))
    events = ask(client, openai_server, "first")
    page = client.get(openai_server + "/")
    path = re.search(r'class="conversation__link" href="(/chat/[^"]+)"', page.text)
    assert path
    form = composer_form(client, openai_server + path.group(1))
    busy = client.post(openai_server + form.pop("action"), data={**form, "query": "too soon"})
    assert busy.status_code == 409
    assert "Still answering" in busy.text and 'hx-target="#composer-error"' in busy.text
    # The page of a conversation with a running answer offers Stop, not Ask.
    assert 'class="composer__action composer__stop"' in client.get(openai_server + path.group(1)).text
    read_events(client, events)
    form = composer_form(client, openai_server + path.group(1))
    again = client.post(openai_server + form.pop("action"), data={**form, "query": "now"})
    assert again.status_code == 200


def test_rename_with_htmx_and_without_javascript(demo_server: str, client: httpx.Client) -> None:
    _finish(ask(client, demo_server, "Old title"), client)
    path = re.search(r'class="conversation__link" href="(/chat/[^"]+)"', client.get(demo_server + "/").text).group(1)
    form = client.get(demo_server + path + "/rename")
    assert form.status_code == 200 and form.text.startswith('<li class="conversation conversation--editing"')
    fields = form_fields(form.text, '<form class="rename-form"')
    renamed = client.post(
        demo_server + fields.pop("action"),
        data={**fields, "title": "  New\ttitle <b>  "},
        headers={"HX-Current-URL": demo_server + path},
    )
    assert renamed.status_code == 200
    assert 'title="New title &lt;b&gt;" aria-current="page">New title &lt;b&gt;</a>' in renamed.text

    with httpx.Client(timeout=10, cookies=client.cookies) as plain:
        page = plain.get(demo_server + path + "/rename")
        assert "<!doctype html>" in page.text and "Rename conversation" in page.text
        fields = form_fields(page.text, '<form class="rename-form"')
        done = plain.post(demo_server + fields.pop("action"), data={**fields, "title": "Plain"})
        assert done.status_code == 303 and done.headers["location"] == path
        assert _list_titles(plain.get(demo_server + "/").text) == ["Plain"]
        empty = plain.post(demo_server + path + "/rename", data={**fields, "title": "   "})
        assert empty.status_code == 422


def test_delete_asks_first_without_javascript_and_redirects(demo_server: str, client: httpx.Client) -> None:
    _finish(ask(client, demo_server, "Delete me"), client)
    path = re.search(r'class="conversation__link" href="(/chat/[^"]+)"', client.get(demo_server + "/").text).group(1)
    with httpx.Client(timeout=10, cookies=client.cookies) as plain:
        confirm = plain.get(demo_server + path + "/delete")
        assert confirm.status_code == 200 and "Delete “Delete me”" in confirm.text
        fields = form_fields(confirm.text, '<form class="confirm-delete"')
        # Without the token nothing happens.
        refused = plain.post(demo_server + fields["action"], data={"csrf_token": "forged"})
        assert refused.status_code == 403
        done = plain.post(demo_server + fields.pop("action"), data=fields)
        assert done.status_code == 303 and done.headers["location"] == "/"
    assert client.get(demo_server + path).status_code == 404
    assert _list_titles(client.get(demo_server + "/").text) == []


def test_delete_with_htmx_removes_the_entry_or_leaves_the_page(demo_server: str, client: httpx.Client) -> None:
    _finish(ask(client, demo_server, "one"), client)
    _finish(ask(client, demo_server, "two"), client)
    page = client.get(demo_server + "/")
    paths = re.findall(r'class="conversation__link" href="(/chat/[^"]+)"', page.text)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    other = client.post(
        demo_server + paths[1] + "/delete", headers={"X-CSRF-Token": token, "HX-Current-URL": demo_server + paths[0]}
    )
    assert other.status_code == 200 and other.text == "" and "hx-redirect" not in other.headers
    current = client.post(
        demo_server + paths[0] + "/delete", headers={"X-CSRF-Token": token, "HX-Current-URL": demo_server + paths[0]}
    )
    assert current.headers["hx-redirect"] == "/"
    assert _list_titles(client.get(demo_server + "/").text) == []


def test_delete_stops_a_running_answer(openai_server: str, upstream: FakeUpstream, client: httpx.Client) -> None:
    upstream.script(Script(chunks=["slow "] * 40, delay=0.25))
    ask(client, openai_server, "long")
    page = client.get(openai_server + "/")
    path = re.search(r'class="conversation__link" href="(/chat/[^"]+)"', page.text).group(1)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    started = time.monotonic()
    assert client.post(openai_server + path + "/delete", headers={"X-CSRF-Token": token}).status_code == 200
    deadline = time.monotonic() + 5
    while upstream.requests[-1].disconnected_at is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert upstream.requests[-1].disconnected_at is not None and time.monotonic() - started < 5


def test_export_downloads_the_conversation_as_markdown(
    openai_server: str, upstream: FakeUpstream, client: httpx.Client
) -> None:
    upstream.script(Script(chunks=["# Heading\n\n", "Some *markdown* <script>x</script>"]))
    _finish(ask(client, openai_server, "Ünïcode question?"), client)
    path = re.search(r'class="conversation__link" href="(/chat/[^"]+)"', client.get(openai_server + "/").text).group(1)
    exported = client.get(openai_server + path + "/export")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/markdown")
    disposition = exported.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="n-code-question.md"')
    assert "filename*=UTF-8''%C3%9Cn%C3%AFcode%20question%3F.md" in disposition
    assert exported.text.startswith("# Ünïcode question?\n")
    assert "> Ünïcode question?" in exported.text
    assert "# Heading\n\nSome *markdown* <script>x</script>" in exported.text
    with httpx.Client(timeout=10) as stranger:
        assert stranger.get(openai_server + path + "/export").status_code == 404


def test_regenerate_replaces_the_answer_and_what_followed(
    openai_server: str, upstream: FakeUpstream, client: httpx.Client
) -> None:
    upstream.script(Script(chunks=["first answer"]), Script(chunks=["second answer"]), Script(chunks=["regenerated"]))
    _finish(ask(client, openai_server, "q1"), client)
    path = re.search(r'class="conversation__link" href="(/chat/[^"]+)"', client.get(openai_server + "/").text).group(1)
    _finish(ask(client, openai_server, "q2", path), client)
    page = client.get(openai_server + path).text
    regenerate = re.findall(r'<form class="answer__regenerate" method="post" action="([^"]+)"', page)
    assert len(regenerate) == 2
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post(openai_server + regenerate[0], headers={"X-CSRF-Token": token})
    assert response.status_code == 200
    assert '<hx-partial hx-target="#thread" hx-swap="innerHTML">' in response.text
    # The thread comes back whole from the store; a one-chunk answer may have ended (and shows) already.
    events = re.search(r'hx-sse:connect="([^"]+)"', response.text)
    if events is not None:
        _finish(openai_server + events.group(1), client)
    page = client.get(openai_server + path).text
    assert page.count('class="message message--user"') == 1 and "regenerated" in page and "second answer" not in page
    # The regenerated question was sent without the exchanges it replaced.
    sent = upstream.requests[-1].body["messages"]
    assert [m["content"] for m in sent if m["role"] != "system"] == ["q1"]


def test_edit_asks_the_edited_question_in_place(
    openai_server: str, upstream: FakeUpstream, client: httpx.Client
) -> None:
    upstream.script(Script(chunks=["first reply"]), Script(chunks=["second reply"]), Script(chunks=["edited answer"]))
    _finish(ask(client, openai_server, "q1"), client)
    path = re.search(r'class="conversation__link" href="(/chat/[^"]+)"', client.get(openai_server + "/").text).group(1)
    _finish(ask(client, openai_server, "q2", path), client)
    page = client.get(openai_server + path).text
    edit_urls = re.findall(r'class="message__edit button button--quiet" href="([^"]+)"', page)
    assert len(edit_urls) == 2
    fragment = client.get(openai_server + edit_urls[1])
    assert fragment.text.startswith('<form class="message message--user message--editing edit-form"')
    fields = form_fields(fragment.text, '<form class="message')
    response = client.post(openai_server + fields.pop("action"), data={**fields, "query": "q2, edited"})
    assert response.status_code == 200
    # The thread comes back whole from the store; a one-chunk answer may have ended (and shows) already.
    events = re.search(r'hx-sse:connect="([^"]+)"', response.text)
    if events is not None:
        _finish(openai_server + events.group(1), client)
    page = client.get(openai_server + path).text
    assert "q2, edited" in page and "edited answer" in page and ">q2<" not in page and "second reply" not in page
    sent = upstream.requests[-1].body["messages"]
    assert [m["content"] for m in sent if m["role"] != "system"] == ["q1", "first reply", "q2, edited"]


def test_without_javascript_a_question_lands_on_the_conversations_url(demo_server: str) -> None:
    with httpx.Client(timeout=20) as plain:
        form = composer_form(plain, demo_server + "/")
        posted = plain.post(demo_server + form.pop("action"), data={**form, "query": "No JS"})
        assert posted.status_code == 303
        location = posted.headers["location"]
        assert re.fullmatch(r"/chat/[A-Za-z0-9_-]+\?wait=[A-Za-z0-9_-]+", location)
        page = plain.get(demo_server + location)
        assert page.status_code == 200 and page.text.rstrip().endswith("</html>")
        assert '<dl class="timing">' in page.text and "No JS" in page.text
        # Opened again (a reload, a bookmark), the same URL shows the conversation.
        again = plain.get(demo_server + location)
        assert again.status_code == 200 and again.text.count('class="message message--user"') == 1
        assert plain.get(demo_server + location.split("?")[0]).status_code == 200


def test_theme_is_remembered_and_rendered_by_the_server(demo_server: str) -> None:
    with httpx.Client(timeout=10) as plain:
        page = plain.get(demo_server + "/")
        assert "data-theme" not in page.text.split("<head>")[0]
        fields = form_fields(page.text, '<form id="theme-switch"')
        chosen = plain.post(demo_server + fields.pop("action"), data={**fields, "theme": "dark"})
        assert chosen.status_code == 303 and chosen.headers["location"] == "/"
        assert "Max-Age=" in chosen.headers["set-cookie"] and "SameSite=Lax" in chosen.headers["set-cookie"]
        assert '<html lang="en" data-theme="dark">' in plain.get(demo_server + "/").text
        for hostile in ["//evil.example/", "https://evil.example/", "/\\evil", "/chat/../x"]:
            response = plain.post(demo_server + "/theme", data={**fields, "theme": "light", "next": hostile})
            assert response.headers["location"] == "/", hostile
        assert plain.post(demo_server + "/theme", data={**fields, "theme": "purple"}).status_code == 422
        plain.cookies.delete("folyam_theme")
        plain.cookies.set("folyam_theme", "<script>")
        assert "data-theme" not in plain.get(demo_server + "/").text.split("<head>")[0]


def test_a_follow_up_leaves_the_list_alone(demo_server: str, client: httpx.Client) -> None:
    _finish(ask(client, demo_server, "Listed once"), client)
    path = re.search(r'class="conversation__link" href="(/chat/[^"]+)"', client.get(demo_server + "/").text).group(1)
    form = composer_form(client, demo_server + path)
    follow_up = client.post(
        demo_server + form.pop("action"),
        data={**form, "query": "again"},
        headers={"HX-Current-URL": demo_server + path},
    )
    assert follow_up.status_code == 200 and "#conversation-list" not in follow_up.text
    _finish(demo_server + re.search(r'hx-sse:connect="([^"]+)"', follow_up.text).group(1), client)
    assert _list_titles(client.get(demo_server + "/").text) == ["Listed once"]


def test_the_list_comes_a_page_at_a_time_and_older_ones_follow(demo_server: str, client: httpx.Client) -> None:
    for n in range(LIST_PAGE + 2):
        _finish(ask(client, demo_server, f"Question {n}"), client)
    page = client.get(demo_server + "/").text
    assert _list_titles(page) == [f"Question {n}" for n in range(LIST_PAGE + 1, 1, -1)]  # the newest page
    [more] = re.findall(r'<a class="conversation-list__more-link" href="([^"]+)" hx-get="\1"', page)

    # With htmx: the next page's items, to replace the link (and no link after them: that was all).
    older = client.get(demo_server + more)
    assert older.status_code == 200 and "<ul" not in older.text
    assert _list_titles(older.text) == ["Question 1", "Question 0"] and "conversation-list__more" not in older.text
    # Without JavaScript: a page of its own, the frame's list still the newest.
    with httpx.Client(timeout=10, cookies=client.cookies) as browser:
        plain = browser.get(demo_server + more)
    assert plain.status_code == 200 and '<h2 class="form-page__heading">Older conversations</h2>' in plain.text
    assert _list_titles(plain.text)[-2:] == ["Question 1", "Question 0"]
    assert _list_titles(plain.text)[:LIST_PAGE] == _list_titles(page)
    # Another session following the link sees none of them; a made-up place in the list is refused.
    with httpx.Client(timeout=10, headers=HTMX_HEADERS) as stranger:
        assert _list_titles(stranger.get(demo_server + more).text) == []
    for nonsense in ["", "?before=", "?before=12", "?before=1.x", "?before=" + "9" * 18 + ".abcdefgh", "?before=1.<b>"]:
        refused = client.get(demo_server + "/conversations" + nonsense)
        assert refused.status_code == 400 and "Not a place in the list" in refused.text, nonsense

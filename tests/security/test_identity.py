"""Red-team items 2, 3 and 15: team-server identity and roles, on SQLite and PostgreSQL.

2: adding an address another organization created must neither attach that account (with the
   other organization's password) nor reveal that it exists.
3: an admin must not reach owner powers, with a key or in the browser; a key never does more
   than its creator's current role allows.
15: the member list (e-mails, roles) is a settings endpoint.
"""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from kilometers.server import accounts, tenancy

PASSWORD = "correct horse"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _user(api: Any, email: str, role: str, org: tenancy.Org, password: str = PASSWORD) -> accounts.User:
    """A user the operator made (`km admin create-user`)."""
    user = accounts.get_user(api.engine, email) or accounts.create_user(api.engine, email, password)
    accounts.set_member(api.engine, org, user, role)
    return user


def _login(api: Any, email: str, password: str = PASSWORD) -> tuple[TestClient, dict[str, Any]]:
    client = TestClient(api.client.app, base_url="http://km.test")
    r = client.post("/auth/login", json={"email": email, "password": password})
    return client, {"status": r.status_code, **r.json()}


def _signed_in(api: Any, email: str, role: str, org: tenancy.Org) -> tuple[TestClient, dict[str, str]]:
    _user(api, email, role, org)
    client, me = _login(api, email)
    assert me["status"] == 200, me
    return client, {"X-CSRF-Token": me["csrf_token"]}


def _shape(r: Any) -> tuple[int, dict[str, Any]]:
    body = r.json()
    return r.status_code, {k: v for k, v in body.items() if k not in ("user_id", "email")}


def test_adding_an_existing_address_neither_takes_it_over_nor_reveals_it(api: Any) -> None:
    a, _, _ = api.org_with_keys("org-a")
    b, _, _ = api.org_with_keys("org-b")
    a_owner, ha = _signed_in(api, "own@a.test", "owner", a)
    b_owner, hb = _signed_in(api, "own@b.test", "owner", b)

    # B squats A's CFO address with a password B chose
    rb = b_owner.post(
        "/api/v1/members",
        json={"email": "cfo@a.test", "role": "member", "password": "b-chose-this"},
        headers=hb,
    )
    assert rb.status_code == 201, rb.text
    # A adds the same address as admin, and a brand-new one: the answers are the same
    taken = a_owner.post(
        "/api/v1/members",
        json={"email": "cfo@a.test", "role": "admin", "password": "a-chose-this"},
        headers=ha,
    )
    fresh = a_owner.post(
        "/api/v1/members",
        json={"email": "new@a.test", "role": "admin", "password": "a-chose-this"},
        headers=ha,
    )
    assert taken.status_code == fresh.status_code == 201
    # A's password was never applied to the existing account
    _, refused = _login(api, "cfo@a.test", "a-chose-this")
    assert refused["status"] == 401
    # B's password (known to B's admins) signs in to B only; A's invitation cannot be taken up
    squatter, me = _login(api, "cfo@a.test", "b-chose-this")
    assert me["status"] == 200 and [o["name"] for o in me["orgs"]] == ["org-b"]
    assert me["org"]["name"] == "org-b" and me["role"] == "member" and me["invitations"] == []
    h = {"X-CSRF-Token": me["csrf_token"]}
    r = squatter.post(f"/auth/invitations/{a.id}", headers=h)
    assert r.status_code == 404 and r.json()["error"]["code"] == "no_invitation"
    assert squatter.post("/auth/switch-org", json={"org_id": a.id}, headers=h).status_code == 403
    assert accounts.member_role(api.engine, a.id, me["user"]["id"]) is None

    # no password: the same refusal whether the address exists or not
    for email in ("cfo@a.test", "nobody@a.test"):
        r = a_owner.post("/api/v1/members", json={"email": email, "role": "viewer"}, headers=ha)
        assert r.status_code == 400 and r.json()["error"]["code"] == "password_required", r.text
    # and the list shows both as invited alike
    listed = {m["email"]: (m["role"], m["status"]) for m in a_owner.get("/api/v1/members").json()["items"]}
    assert listed["cfo@a.test"] == listed["new@a.test"] == ("admin", "invited")

    # the answers, and the list, were the same for the existing and the new address
    assert _shape(taken) == _shape(fresh) == (201, {"role": "admin", "status": "invited"})
    # the new address A created is A's: it joins A at its first sign-in, with A's password
    _, newcomer = _login(api, "new@a.test", "a-chose-this")
    assert newcomer["status"] == 200 and newcomer["org"]["name"] == "org-a" and newcomer["role"] == "admin"


def test_an_invited_user_keeps_their_password_and_accepts_or_declines(api: Any) -> None:
    a, _, _ = api.org_with_keys("org-a")
    b, _, _ = api.org_with_keys("org-b")
    c, _, _ = api.org_with_keys("org-c")
    _user(api, "ann@example.com", "member", b, password="anns own password")
    a_owner, ha = _signed_in(api, "own@a.test", "owner", a)
    c_owner, hc = _signed_in(api, "own@c.test", "owner", c)
    body = {"email": "ann@example.com", "role": "viewer", "password": "chosen by a"}
    assert a_owner.post("/api/v1/members", json=body, headers=ha).status_code == 201
    assert c_owner.post("/api/v1/members", json=body, headers=hc).status_code == 201
    # an invitation is not a membership
    assert _login(api, "ann@example.com", "chosen by a")[1]["status"] == 401
    ann, me = _login(api, "ann@example.com", "anns own password")
    assert [o["name"] for o in me["orgs"]] == ["org-b"]
    assert me["invitations"] == [
        {"id": a.id, "name": "org-a", "role": "viewer"},
        {"id": c.id, "name": "org-c", "role": "viewer"},
    ]
    h = {"X-CSRF-Token": me["csrf_token"]}
    assert ann.post(f"/auth/invitations/{a.id}").status_code == 403  # CSRF
    r = ann.post(f"/auth/invitations/{a.id}", headers=h)
    assert r.status_code == 200, r.text
    assert {o["name"]: o["role"] for o in r.json()["orgs"]} == {"org-a": "viewer", "org-b": "member"}
    assert ann.delete(f"/auth/invitations/{c.id}", headers=h).status_code == 204
    assert ann.delete(f"/auth/invitations/{c.id}", headers=h).status_code == 404
    assert ann.get("/auth/me").json()["invitations"] == []
    listed = {m["email"]: m["status"] for m in a_owner.get("/api/v1/members").json()["items"]}
    assert listed["ann@example.com"] == "active"
    assert "ann@example.com" not in {m["email"] for m in c_owner.get("/api/v1/members").json()["items"]}
    # an API key cannot answer invitations; adding a member twice is refused
    _, _, read_key = api.org_with_keys("org-d")
    assert api.client.post(f"/auth/invitations/{a.id}", headers=bearer(read_key)).status_code == 403
    r = a_owner.post("/api/v1/members", json=body, headers=ha)
    assert r.status_code == 409 and r.json()["error"]["code"] == "already_member"


def test_an_admin_reaches_no_owner_power_with_a_key_or_in_the_browser(api: Any) -> None:
    org, _, _ = api.org_with_keys("acme")
    owner, ho = _signed_in(api, "own@example.com", "owner", org)
    second = _user(api, "own2@example.com", "owner", org)  # two owners: "last owner" is not the refusal
    admin, h = _signed_in(api, "ada@example.com", "admin", org)
    created = admin.post("/api/v1/keys", json={"scope": "admin", "name": "escalate"}, headers=h)
    assert created.status_code == 201
    key = bearer(created.json()["key"])
    owner_id = owner.get("/auth/me").json()["user"]["id"]

    # the admin's key carries the admin's role: no owner powers
    r = api.client.post(
        "/api/v1/members",
        json={"email": "evil@example.com", "role": "owner", "password": "longenough"},
        headers=key,
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_role"
    for target in (owner_id, second.id):
        r = api.client.patch(f"/api/v1/members/{target}", json={"role": "viewer"}, headers=key)
        assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_role"
        assert api.client.delete(f"/api/v1/members/{target}", headers=key).status_code == 403
    # ... nor in the browser
    assert admin.delete(f"/api/v1/members/{second.id}", headers=h).status_code == 403
    assert admin.patch(f"/api/v1/members/{second.id}", json={"role": "member"}, headers=h).status_code == 403
    r = admin.post(
        "/api/v1/members",
        json={"email": "evil@example.com", "role": "owner", "password": "longenough"},
        headers=h,
    )
    assert r.status_code == 403
    roles = {m["email"]: m["role"] for m in owner.get("/api/v1/members").json()["items"]}
    assert roles == {"ada@example.com": "admin", "own2@example.com": "owner", "own@example.com": "owner"}
    # what an admin may do, the key does
    r = api.client.post(
        "/api/v1/members",
        json={"email": "max@example.com", "role": "member", "password": "longenough"},
        headers=key,
    )
    assert r.status_code == 201

    # the key follows its creator's current role: demoted, then removed
    admin_id = admin.get("/auth/me").json()["user"]["id"]
    assert owner.patch(f"/api/v1/members/{admin_id}", json={"role": "member"}, headers=ho).status_code == 200
    assert api.client.get("/api/v1/members", headers=key).status_code == 403
    assert api.client.get("/api/v1/sessions", headers=key).status_code == 200
    assert owner.delete(f"/api/v1/members/{admin_id}", headers=ho).status_code == 204
    r = api.client.get("/api/v1/sessions", headers=key)
    assert r.status_code == 403 and r.json()["error"]["code"] == "creator_not_member"

    # the last owner can be neither demoted nor removed, even by an owner
    assert owner.delete(f"/api/v1/members/{second.id}", headers=ho).status_code == 204
    r = owner.patch(f"/api/v1/members/{owner_id}", json={"role": "admin"}, headers=ho)
    assert r.status_code == 409 and r.json()["error"]["code"] == "last_owner"
    r = owner.delete(f"/api/v1/members/{owner_id}", headers=ho)
    assert r.status_code == 409 and r.json()["error"]["code"] == "last_owner"
    assert accounts.member_role(api.engine, org.id, owner_id) == "owner"

    # a key with no creator (km admin create-key, or any key made before keys recorded their
    # creator, which an admin may have made with another key) is an admin's, never an owner's
    operator = bearer(tenancy.create_key(api.engine, org, "admin"))
    r = api.client.post(
        "/api/v1/members",
        json={"email": "boss@example.com", "role": "owner", "password": "longenough"},
        headers=operator,
    )
    assert r.status_code == 403
    r = api.client.patch(f"/api/v1/members/{owner_id}", json={"role": "viewer"}, headers=operator)
    assert r.status_code == 403 and accounts.member_role(api.engine, org.id, owner_id) == "owner"
    r = api.client.post(
        "/api/v1/members",
        json={"email": "helper@example.com", "role": "admin", "password": "longenough"},
        headers=operator,
    )
    assert r.status_code == 201  # everything short of owners


def test_the_member_list_needs_the_settings_permission(api: Any) -> None:
    org, ingest_key, read_key = api.org_with_keys("acme")
    for key in (read_key, ingest_key):
        r = api.client.get("/api/v1/members", headers=bearer(key))
        assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"
    for email, role in (("vic@example.com", "viewer"), ("max@example.com", "member")):
        client, _ = _signed_in(api, email, role, org)
        r = client.get("/api/v1/members")
        assert r.status_code == 403 and "ada@example.com" not in r.text
    admin, _ = _signed_in(api, "ada@example.com", "admin", org)
    assert admin.get("/api/v1/members").status_code == 200
    admin_key = bearer(tenancy.create_key(api.engine, org, "admin"))
    emails = [m["email"] for m in api.client.get("/api/v1/members", headers=admin_key).json()["items"]]
    assert emails == ["ada@example.com", "max@example.com", "vic@example.com"]

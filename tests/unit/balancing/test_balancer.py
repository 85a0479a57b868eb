"""
Balancers and peer state driven with plain numbers: no sockets, no reactor,
``now`` is a fake clock reading.

Where nginx is the oracle the expected sequences were recorded from nginx
1.22.1 (/usr/sbin/nginx) with the same upstream blocks on 127.0.0.1:18081-18083
(``max_fails=0``, ``proxy_next_upstream off``, ``$upstream_addr`` logged):
weights 5,1,1 gave ``1121311``; ``hash $arg_k`` and ``hash $arg_k consistent``
for k = key0..key29 and ``ip_hash`` for clients 127.0.N.1 gave the strings
below.  The 5,1,1 order is also the one in nginx's smooth weighted round robin
changeset and in nginx-behaviour.md 4.2; the 15/15 and 6/24 splits mirror
nginx-tests upstream.t.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest

from nginx_support import NGINX_CHASH, NGINX_HASH, NGINX_IP_HASH
from wstunnel.balancing.balancer import Balancer, make_balancer
from wstunnel.config.model import Balancing, Peer, Source, Template, Upstream, VarRef
from wstunnel.balancing.peers import PeerState, failed_out, released, selected, usable

SRC = Source("test.conf", 1)


def peer(port: int, **params) -> Peer:
    return Peer("127.0.0.1", port, f"127.0.0.1:{port}", **params)


def group(*peers: Peer, method: str = "round_robin", **balancing) -> Upstream:
    return Upstream("backend", peers, False, SRC, Balancing(method, **balancing))


def three(method: str = "round_robin", **balancing) -> Balancer:
    """The nginx oracle's group: 127.0.0.1:18081-18083."""
    if method == "hash":
        balancing["key"] = Template("$arg_k", (VarRef("arg_k"),))
    peers = (peer(18081, max_fails=0), peer(18082, max_fails=0), peer(18083, max_fails=0))
    return make_balancer(group(*peers, method=method, **balancing))


def one_pick(balancer: Balancer, key: str = "", now: float = 0.0) -> PeerState | None:
    """A whole request that succeeds at once: pick, then release."""
    state = balancer.pick(balancer.start(key), now)
    if state is not None:
        balancer.release(state, now, failed=False)
    return state


def last_digit(state: PeerState | None) -> str:
    return "-" if state is None else str(state.peer.port)[-1]


# -- round robin -------------------------------------------------------------------


def test_weights_5_1_1_give_nginx_order() -> None:
    balancer = three()
    weighted = make_balancer(group(peer(18081, weight=5), peer(18082), peer(18083)))
    assert "".join(last_digit(one_pick(weighted)) for _ in range(7)) == "1121311"
    assert "".join(last_digit(one_pick(balancer)) for _ in range(6)) == "123123"


def test_weights_2_1_give_a_b_a_a_b_a() -> None:
    balancer = make_balancer(group(peer(1, weight=2), peer(2)))
    assert "".join(last_digit(one_pick(balancer)) for _ in range(6)) == "121121"


def test_equal_weights_split_evenly() -> None:
    """nginx-tests upstream.t: two servers, 30 requests, 15 each."""
    balancer = make_balancer(group(peer(1), peer(2)))
    assert Counter(last_digit(one_pick(balancer)) for _ in range(30)) == {"1": 15, "2": 15}


def test_max_fails_3_with_every_third_request_failing() -> None:
    """
    nginx-tests upstream.t: max_fails=3 fail_timeout=10s and a first backend
    that fails every third request it gets; the failed request is retried on
    the second.  Of 30 requests the first backend answers 6, the second 24.
    """
    balancer = make_balancer(group(peer(1, max_fails=3), peer(2, max_fails=3)))
    answered: Counter[int] = Counter()
    seen_by_first = 0
    for _ in range(30):
        pick = balancer.start()
        while True:
            state = balancer.pick(pick, 1.0)
            assert state is not None
            failed = False
            if state.peer.port == 1:
                seen_by_first += 1
                failed = seen_by_first % 3 == 0
            balancer.release(state, 1.0, failed=failed)
            if not failed:
                answered[state.peer.port] += 1
                break
    assert answered == {1: 6, 2: 24}


def test_a_request_never_tries_a_peer_twice() -> None:
    balancer = make_balancer(group(peer(1), peer(2), peer(3)))
    pick = balancer.start()
    chosen = [balancer.pick(pick, 0.0) for _ in range(4)]
    assert [last_digit(s) for s in chosen] == ["1", "2", "3", "-"]
    assert balancer.tries == 3


# -- passive health ----------------------------------------------------------------


def test_a_failed_peer_sits_out_fail_timeout_then_gets_one_trial() -> None:
    balancer = make_balancer(group(peer(1, fail_timeout=10.0), peer(2)))
    first = balancer.pick(balancer.start(), 100.0)
    assert last_digit(first) == "1"
    assert balancer.release(first, 100.0, failed=True), "max_fails=1: disabled at once"
    assert failed_out(first, 105.0)
    assert [last_digit(one_pick(balancer, now=t)) for t in (101.0, 105.0, 110.0)] == ["2", "2", "2"]
    assert not failed_out(first, 110.5)
    # Back with effective weight 0, regaining 1 per round: it returns gradually.
    assert [last_digit(one_pick(balancer, now=110.5)) for _ in range(6)] == ["2", "2", "1", "2", "1", "2"]
    assert first.checked == 110.5
    assert first.fails == 0, "a success after the new check forgets the failures"


def test_a_failed_trial_takes_the_peer_out_again() -> None:
    state = PeerState(peer(1, max_fails=2, fail_timeout=5.0))
    for now in (0.0, 1.0):
        selected(state, now)
        released(state, now, failed=True)
    assert failed_out(state, 5.9) and not failed_out(state, 6.1)
    selected(state, 6.1)
    assert released(state, 6.1, failed=True)
    assert failed_out(state, 11.0) and state.fails == 3


def test_failures_within_fail_timeout_add_up_and_a_success_inside_does_not_reset() -> None:
    state = PeerState(peer(1, max_fails=3, fail_timeout=10.0))
    for now, failed in ((0.0, True), (1.0, False), (2.0, True)):
        selected(state, now)
        assert not released(state, now, failed=failed)
    assert state.fails == 2 and usable(state, 3.0)
    selected(state, 3.0)
    assert released(state, 3.0, failed=True)
    assert not usable(state, 12.9) and usable(state, 13.1)


def test_failures_lower_the_effective_weight_which_grows_back() -> None:
    state = PeerState(peer(1, weight=6, max_fails=3))
    selected(state, 0.0)
    released(state, 0.0, failed=True)
    assert state.effective_weight == 4
    balancer = make_balancer(group(peer(1, weight=6, max_fails=3)))
    balancer.primary[0].effective_weight = 4
    one_pick(balancer)
    assert balancer.primary[0].effective_weight == 5


def test_max_fails_0_never_disables() -> None:
    state = PeerState(peer(1, max_fails=0))
    for now in range(5):
        selected(state, float(now))
        assert not released(state, float(now), failed=True)
    assert usable(state, 5.0) and state.effective_weight == 1


def test_a_single_peer_is_never_marked_down() -> None:
    balancer = make_balancer(group(peer(1)))
    for now in range(3):
        state = balancer.pick(balancer.start(), float(now))
        assert state is not None
        assert not balancer.release(state, float(now), failed=True)
    assert balancer.primary[0].fails == 0


def test_every_peer_failed_out_means_no_live_upstreams() -> None:
    balancer = make_balancer(group(peer(1), peer(2)))
    for _ in range(2):
        state = balancer.pick(balancer.start(), 0.0)
        balancer.release(state, 0.0, failed=True)
    assert balancer.pick(balancer.start(), 5.0) is None
    assert balancer.pick(balancer.start(), 10.5) is not None


# -- backup, down, max_conns -------------------------------------------------------


def test_backup_serves_only_while_every_primary_is_unusable() -> None:
    balancer = make_balancer(group(peer(1), peer(2), peer(8, backup=True), peer(9, backup=True)))
    assert balancer.tries == 4
    pick = balancer.start()
    order = []
    while (state := balancer.pick(pick, 0.0)) is not None:
        order.append(last_digit(state))
        balancer.release(state, 0.0, failed=True)
    assert order == ["1", "2", "8", "9"]
    assert [last_digit(one_pick(balancer, now=1.0)) for _ in range(4)] == ["-"] * 4
    assert last_digit(one_pick(balancer, now=11.0)) in ("1", "2")


def test_down_peers_are_skipped_and_not_counted_as_tries() -> None:
    balancer = make_balancer(group(peer(1, down=True), peer(2), peer(3, backup=True, down=True)))
    assert balancer.tries == 1
    assert {last_digit(one_pick(balancer)) for _ in range(5)} == {"2"}
    only = make_balancer(group(peer(1, down=True)))
    assert only.pick(only.start(), 0.0) is None


def test_max_conns_caps_open_connections_and_overflows_to_backup() -> None:
    balancer = make_balancer(group(peer(1, max_conns=2), peer(9, backup=True)))
    held = [balancer.pick(balancer.start(), 0.0) for _ in range(3)]
    assert [last_digit(s) for s in held] == ["1", "1", "9"]
    balancer.release(held[0], 1.0, failed=False)
    assert last_digit(balancer.pick(balancer.start(), 1.0)) == "1"
    single = make_balancer(group(peer(1, max_conns=1)))
    assert single.pick(single.start(), 0.0) is not None
    assert single.pick(single.start(), 0.0) is None, "max_conns binds a single peer too"


# -- least_conn --------------------------------------------------------------------


def test_least_conn_counts_open_tunnels_for_their_whole_life() -> None:
    """Three tunnels opened on a and b stay open: new ones go where fewest are open."""
    balancer = make_balancer(group(peer(1), peer(2), peer(3), method="least_conn"))
    tunnels = [balancer.pick(balancer.start(), 0.0) for _ in range(3)]
    assert [last_digit(s) for s in tunnels] == ["1", "2", "3"]
    balancer.release(tunnels[1], 1.0, failed=False)
    balancer.release(tunnels[2], 1.0, failed=False)
    # Short requests now never go to peer 1 while its tunnel lives.
    assert {last_digit(one_pick(balancer)) for _ in range(10)} == {"2", "3"}
    balancer.release(tunnels[0], 2.0, failed=False)
    assert {last_digit(one_pick(balancer)) for _ in range(6)} == {"1", "2", "3"}


def test_least_conn_spreads_long_tunnels_evenly_where_round_robin_piles_them_up() -> None:
    """
    Every second connection is a long tunnel, the others short requests:
    round robin puts every tunnel on the same peer, least_conn spreads them.
    """
    for method, expected in (("round_robin", {"1": 10}), ("least_conn", {"1": 5, "2": 5})):
        balancer = make_balancer(group(peer(1), peer(2), method=method))
        tunnels = []
        for _ in range(10):
            tunnels.append(balancer.pick(balancer.start(), 0.0))
            one_pick(balancer)
        assert Counter(last_digit(s) for s in tunnels) == expected, method


def test_least_conn_weighs_connections_and_breaks_ties_by_weight() -> None:
    balancer = make_balancer(group(peer(1, weight=3), peer(2), method="least_conn"))
    held = [balancer.pick(balancer.start(), 0.0) for _ in range(8)]
    assert Counter(last_digit(s) for s in held) == {"1": 6, "2": 2}


def test_least_conn_falls_back_to_backup() -> None:
    balancer = make_balancer(group(peer(1, down=True), peer(9, backup=True), method="least_conn"))
    assert last_digit(one_pick(balancer)) == "9"


# -- ip_hash, hash -----------------------------------------------------------------


def test_ip_hash_matches_nginx() -> None:
    balancer = three("ip_hash")
    assert "".join(last_digit(one_pick(balancer, f"127.0.{n}.1")) for n in range(30)) == NGINX_IP_HASH


def test_ip_hash_is_stable_per_24_and_for_mapped_addresses() -> None:
    balancer = three("ip_hash")
    for n in range(30):
        chosen = {last_digit(one_pick(balancer, f"10.1.{n}.{host}")) for host in (1, 77, 254)}
        assert len(chosen) == 1
    assert one_pick(balancer, "::ffff:10.1.2.3") is one_pick(balancer, "10.1.2.9")
    v6 = [last_digit(one_pick(balancer, f"2001:db8::{n:x}")) for n in range(60)]
    assert set(v6) == {"1", "2", "3"} and v6 == [last_digit(one_pick(balancer, f"2001:db8::{n:x}")) for n in range(60)]


def test_ip_hash_moves_only_the_clients_of_an_unusable_peer() -> None:
    balancer = three("ip_hash")
    before = {n: one_pick(balancer, f"127.0.{n}.1") for n in range(30)}
    down = make_balancer(group(peer(18081), peer(18082, down=True), peer(18083), method="ip_hash"))
    for n, state in before.items():
        after = one_pick(down, f"127.0.{n}.1")
        if state.peer.port != 18082:
            assert after.peer.port == state.peer.port
        else:
            assert after.peer.port in (18081, 18083)


def test_hash_matches_nginx() -> None:
    balancer = three("hash")
    assert "".join(last_digit(one_pick(balancer, f"key{k}")) for k in range(30)) == NGINX_HASH


def test_consistent_hash_matches_nginx() -> None:
    balancer = three("hash", consistent=True)
    assert "".join(last_digit(one_pick(balancer, f"key{k}")) for k in range(30)) == NGINX_CHASH


def test_consistent_hash_moves_about_one_nth_of_keys_when_a_peer_is_added() -> None:
    def owners(count: int) -> dict[str, int]:
        peers = tuple(peer(8000 + i) for i in range(count))
        balancer = make_balancer(group(*peers, method="hash", consistent=True))
        return {key: one_pick(balancer, key).peer.port for key in (f"/room/{i}" for i in range(4000))}

    before, after = owners(4), owners(5)
    moved = [key for key in before if before[key] != after[key]]
    assert all(after[key] == 8004 for key in moved), "keys move only to the new peer"
    assert 0.12 < len(moved) / len(before) < 0.28, len(moved) / len(before)


def test_plain_hash_moves_most_keys_when_a_peer_is_added() -> None:
    def owners(count: int) -> dict[str, int]:
        peers = tuple(peer(8000 + i) for i in range(count))
        balancer = make_balancer(group(*peers, method="hash", key=Template("k", ("k",))))
        return {key: one_pick(balancer, key).peer.port for key in (f"/room/{i}" for i in range(2000))}

    before, after = owners(4), owners(5)
    assert sum(before[k] != after[k] for k in before) / len(before) > 0.5


def test_hash_retries_move_on_and_an_empty_key_is_round_robin() -> None:
    for consistent in (False, True):
        balancer = three("hash", consistent=consistent)
        pick = balancer.start("key0")
        tried = [balancer.pick(pick, 0.0) for _ in range(4)]
        assert len({id(s) for s in tried[:3]}) == 3 and tried[3] is None
        assert "".join(last_digit(one_pick(balancer, "")) for _ in range(3)) == "123"


# -- random ------------------------------------------------------------------------


def test_random_follows_weights() -> None:
    upstream = group(peer(1, weight=3), peer(2), method="random")
    balancer = make_balancer(upstream, random.Random(5))
    counts = Counter(last_digit(one_pick(balancer)) for _ in range(4000))
    assert 0.70 < counts["1"] / 4000 < 0.80


def test_random_two_prefers_the_peer_with_fewer_connections() -> None:
    upstream = group(peer(1), peer(2), peer(3), method="random", two=True)
    balancer = make_balancer(upstream, random.Random(7))
    held = [balancer.pick(balancer.start(), 0.0) for _ in range(30)]
    counts = Counter(last_digit(s) for s in held)
    assert counts == {"1": 10, "2": 10, "3": 10}, "two choices keep open connections level"
    plain = make_balancer(group(peer(1), peer(2), peer(3), method="random"), random.Random(7))
    spread = Counter(last_digit(plain.pick(plain.start(), 0.0)) for _ in range(30))
    assert max(spread.values()) - min(spread.values()) > 2


def test_random_skips_unusable_peers() -> None:
    upstream = group(peer(1, down=True), peer(2), method="random", two=True)
    balancer = make_balancer(upstream, random.Random(1))
    assert {last_digit(one_pick(balancer)) for _ in range(20)} == {"2"}


@pytest.mark.parametrize("method", ["round_robin", "least_conn", "ip_hash", "hash", "random"])
def test_every_method_gives_up_when_nothing_is_usable(method) -> None:
    key = Template("k", ("k",)) if method == "hash" else None
    balancer = make_balancer(group(peer(1, down=True), peer(2, down=True), method=method, key=key))
    assert balancer.pick(balancer.start("1.2.3.4"), 0.0) is None

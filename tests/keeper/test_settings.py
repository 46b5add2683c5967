"""Keeper settings: a TOML file holds only the settings' own names, a bad one is refused in one
line naming the key; key variables are named in errors; plain-text logs keep their fields."""

import logging

import pytest

from keeper.settings import CONFIG_ENV, ConfigError, load


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    import os

    for name in [k for k in os.environ if k.startswith("PAYGENT_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv(CONFIG_ENV, "")  # load(path) sets it: restored (removed) after each test
    monkeypatch.delenv(CONFIG_ENV)


def test_a_settings_file_sets_what_the_environment_would(tmp_path):
    path = tmp_path / "keeper.toml"
    path.write_text('rpc_url = "http://127.0.0.1:9"\nport = 9100\nCONFIRMATIONS = 2\n')
    settings = load(path)
    assert (settings.rpc, settings.port, settings.depth) == ("http://127.0.0.1:9", 9100, 2)


@pytest.mark.parametrize("text, named", [
    ('rpc-url = "http://10.0.0.1:8545"\n', "rpc-url (did you mean rpc_url?)"),
    ("prot = 9000\n", "prot (did you mean port?)"),
    ('[keeper]\nnetwork = "cronos-testnet"\n', "[keeper]"),
])
def test_an_unknown_key_in_the_settings_file_is_refused_by_name(tmp_path, text, named):
    path = tmp_path / "keeper.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load(path)
    assert named in str(err.value) and "\n" not in str(err.value)


def test_a_settings_path_that_is_not_a_file_is_refused(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="is not a file"):
        load(tmp_path)
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path))
    with pytest.raises(ConfigError, match="which is not a file"):
        load()


def test_a_settings_file_that_is_not_toml_is_refused(tmp_path):
    path = tmp_path / "keeper.toml"
    path.write_text("rpc_url = \n")
    with pytest.raises(ConfigError, match="is not TOML"):
        load(path)


def test_plain_text_logs_keep_the_fields_that_say_why():
    from keeper.app import TextFormatter

    record = logging.LogRecord("paygent.keeper", logging.ERROR, __file__, 1, "keeper cannot start", None, None)
    record.reason = "the RPC serves another chain"
    line = TextFormatter().format(record)
    assert line.endswith('keeper cannot start reason="the RPC serves another chain"')


def test_a_node_without_its_genesis_block_is_unknown_not_another_chain():
    from keeper.indexer import ChainIdentity, RpcUnavailable, WrongChain

    class PrunedNode:
        url = "http://pruned.test"

        def call(self, method, params=None):
            return {"eth_chainId": "0x152", "eth_getBlockByNumber": None}[method]

    identity = ChainIdentity(338, "0x" + "ab" * 32)
    with pytest.raises(RpcUnavailable):
        identity.check(PrunedNode())
    PrunedNode.call = lambda self, method, params=None: {"eth_chainId": "0x152",
                                                        "eth_getBlockByNumber": {"hash": "0x" + "cd" * 32}}[method]
    with pytest.raises(WrongChain, match="genesis differs"):
        identity.check(PrunedNode())

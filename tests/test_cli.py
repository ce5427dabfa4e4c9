from mmjax import cli


def test_flag_names_may_be_spelt_with_hyphens_but_config_overrides_and_values_are_kept():
    assert cli._underscored("--input-only") == "--input_only"
    assert cli._underscored("--input-batches=5") == "--input_batches=5"
    assert cli._underscored("--output=/tmp/my-dir") == "--output=/tmp/my-dir"
    assert cli._underscored("--config.data.dir=a-b") == "--config.data.dir=a-b"
    assert cli._underscored("positional-arg") == "positional-arg"

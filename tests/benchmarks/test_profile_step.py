"""The step profile (benchmarks/profile_step.py): HLO names to model code, and a real trace."""

import jax
import pytest

from benchmarks import profile_step
from tests.tiny import tiny_config

HLO = """
ENTRY %main.1 (p0: f32[8,4]) -> f32[8,4] {
  %ynn_fusion.3 = f32[8,4]{1,0} fusion(f32[8,4]{1,0} %p0), kind=kCustom, calls=%f, metadata={op_type="dot_general" op_name="jit(train_step)/jvp(AffectModel)/audio_encoder/layer_0/attention/dot_general" source_file="layers.py"}
  %copy_fusion = f32[8,4]{1,0} fusion(%ynn_fusion.3), kind=kLoop, metadata={op_name="jit(train_step)/transpose(jvp(AffectModel))/audio_encoder/final_norm/mul"}
  ROOT %add.7 = f32[8,4]{1,0} add(%copy_fusion, %p0), metadata={op_name="jit(train_step)/mul"}
  %dot.2 = f32[8,4]{1,0} dot(%p0, %p0)
}
"""


# A trace as an accelerator writes it: kernels on stream lines, each naming the HLO instruction that
# launched it (a string or a reference to a name), beside lines derived from them.
TRACE = """
planes { id: 1 name: "/device:GPU:0"
  lines { id: 1 name: "Stream #14(Compute)" timestamp_ns: 1000
    events { metadata_id: 1 offset_ps: 0 duration_ps: 2000000 stats { metadata_id: 1 str_value: "ynn_fusion.3" } }
    events { metadata_id: 2 offset_ps: 3000000 duration_ps: 1000000 stats { metadata_id: 1 ref_value: 7 } } }
  lines { id: 2 name: "XLA Ops" timestamp_ns: 1000 events { metadata_id: 3 offset_ps: 0 duration_ps: 2000000 } }
  event_metadata { key: 1 value { id: 1 name: "loop_fusion_kernel" } }
  event_metadata { key: 2 value { id: 2 name: "sm90_xmma_gemm" } }
  event_metadata { key: 3 value { id: 3 name: "ynn_fusion.3" } }
  stat_metadata { key: 1 value { id: 1 name: "hlo_op" } }
  stat_metadata { key: 7 value { id: 7 name: "copy_fusion" } } }
planes { id: 2 name: "/host:CPU"
  lines { id: 1 name: "tf_XLACpuThread/1" timestamp_ns: 0
    events { metadata_id: 1 offset_ps: 0 duration_ps: 5000000 }
    events { metadata_id: 2 offset_ps: 0 duration_ps: 9000000 } }
  lines { id: 2 name: "python" timestamp_ns: 0 events { metadata_id: 1 offset_ps: 0 duration_ps: 1000 } }
  event_metadata { key: 1 value { id: 1 name: "add.7" } }
  event_metadata { key: 2 value { id: 2 name: "ThunkExecutor::Execute" } } }
"""


def test_operations_are_the_host_threads_events_on_a_cpu_and_the_device_kernels_elsewhere():
    data = jax.profiler.ProfileData.from_text_proto(TRACE)
    assert profile_step.operations(data, "cpu") == [("tf_XLACpuThread/1", "add.7", 5000)]
    assert profile_step.operations(data, "gpu") == [("Stream #14(Compute)", "ynn_fusion.3", 2000),
                                                    ("Stream #14(Compute)", "copy_fusion", 1000)]


def test_xla_gpu_command_buffers_are_off_while_profiling_unless_the_user_set_them():
    # A CUDA graph shows in the trace as one command_buffer_N event with no HLO instruction.
    assert profile_step.one_kernel_per_operation("") == "--xla_gpu_enable_command_buffer="
    assert profile_step.one_kernel_per_operation("--xla_dump_to=/tmp/d") == (
        "--xla_dump_to=/tmp/d --xla_gpu_enable_command_buffer=")
    user = "--xla_gpu_enable_command_buffer=FUSION"
    assert profile_step.one_kernel_per_operation(user) == user


def test_operations_are_traced_back_to_the_model_code_and_phase_that_made_them():
    sources = profile_step.operation_sources(HLO)
    assert sources == {"ynn_fusion.3": "jit(train_step)/jvp(AffectModel)/audio_encoder/layer_0/attention/dot_general",
                       "copy_fusion": "jit(train_step)/transpose(jvp(AffectModel))/audio_encoder/final_norm/mul",
                       "add.7": "jit(train_step)/mul"}
    attribute = lambda name, depth=2: profile_step.attribute(sources.get(name), depth, "AffectModel")  # noqa: E731
    assert attribute("ynn_fusion.3") == ("forward", "audio_encoder/layer_0")
    assert attribute("ynn_fusion.3", depth=9) == ("forward", "audio_encoder/layer_0/attention/dot_general")
    assert attribute("copy_fusion") == ("backward", "audio_encoder/final_norm")
    assert attribute("add.7") == ("update", "mul")
    assert attribute("dot.2") == ("update", "(unattributed)")
    assert profile_step.attribute("jit(eval_step)/AffectModel/fusion/mul", 1, "AffectModel") == ("forward", "fusion")

    events = [("t1", "ynn_fusion.3", 4_000_000), ("t2", "ynn_fusion.3", 2_000_000), ("t1", "copy_fusion", 1_000_000),
              ("t2", "dot.2", 1_000_000)]
    summary = profile_step.summarise(events, sources, steps=2, depth=1, model="AffectModel")
    assert summary["operations_per_step"] == 2
    assert summary["operations_by_phase"] == {"forward": 1, "backward": 0.5, "update": 0.5}
    assert summary["busy_ms_per_thread"] == {"t1": 2.5, "t2": 1.5}
    assert summary["ms_by_phase"] == {"forward": 3.0, "backward": 0.5, "update": 0.5}
    assert summary["ms_by_path"] == {"forward: audio_encoder": 3.0, "backward: audio_encoder": 0.5,
                                     "update: (unattributed)": 0.5}
    assert summary["ms_by_kind"] == {"ynn_fusion": 3.0, "copy_fusion": 0.5, "dot": 0.5}


@pytest.mark.slow  # compiles and traces the tiny config's train step (~20 s on 2 cores)
def test_a_traced_train_step_spends_its_time_in_the_models_forward_and_backward_passes(records_dir):
    result = profile_step.profile(tiny_config(records_dir), "train", steps=2, depth=2, warmup=1,
                                  devices=jax.devices()[:1])
    phases = result["ms_by_phase"]
    assert result["operations_per_step"] > 100 and result["wall_ms_per_step"] > 0
    assert phases["forward"] > 0 and phases["backward"] > 0 and phases["update"] > 0
    assert phases["forward"] + phases["backward"] > 0.5 * sum(phases.values())
    for phase in ("forward", "backward"):
        assert any(path.startswith(f"{phase}: ") and "text_encoder" in path for path in result["ms_by_path"])
    assert sum(result["busy_ms_per_thread"].values()) == pytest.approx(sum(phases.values()))
    text = profile_step.format_profile(result, top=3)
    assert "train step" in text and text.count("\n  ") == 6  # three rows in each of the two tables


@pytest.mark.slow  # compiles the tiny config's eval step
def test_a_traced_eval_step_is_the_models_forward_pass(records_dir):
    result = profile_step.profile(tiny_config(records_dir), "eval", steps=1, depth=1, warmup=1,
                                  devices=jax.devices()[:1])
    assert set(result["ms_by_phase"]) == {"forward", "update"}  # update: the step's metrics
    assert result["ms_by_phase"]["forward"] > result["ms_by_phase"]["update"]
    assert "forward: text_encoder" in result["ms_by_path"] or "forward: AffectModel._text_states" in result["ms_by_path"]

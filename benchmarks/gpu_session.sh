#!/usr/bin/env bash
# GPU checks, run from the repository root on a CUDA machine that has torch, numpy, onnx,
# onnxruntime and OpenCV but none of this project's other dependencies (no rclpy, no rosbags).
# STAGES picks what runs (default: all, in this order):
#   ort       unpack a carried onnxruntime-gpu build (benchmarks/ort_gpu_carry.py pieces from
#             ORT_PIECE_DIRS, each call copying what it carries; or ORT_ARCHIVE) and put it
#             first on PYTHONPATH, so the checks below use its CUDA/TensorRT EPs;
#   check     inference: torch CUDA fp32/fp16 and ONNX Runtime CUDA/TensorRT against the CPU,
#             fp16 throughput at batch 16 and batch-1 latency at 640x640 (CHECK_OPTIONS: by
#             default the shipped weights on frames of DISTILL_SOURCE);
#   train     a short AMP (bf16) training run at batch 16 and 640x640, images/s;
#   pipeline  the node processing path: 4 x 720p cameras at 30 Hz through batcher, detector,
#             tracker (no DDS), 1 ms wait: as shipped, without frames prepared ahead, and
#             without the batcher's arrival forecast;
#   ros       install ROS 2 offline from the wheels in ROS_WHEEL_DIRS (tools/offline_wheels.py,
#             carried in pieces; each call copies its piece to /tmp/ros_wheels) with
#             tools/setup_env.py --offline-wheels, then run the real detector_node on the GPU fed
#             by 4 x 720p cameras at 30 Hz over DDS from another process (bench_node.py soak),
#             once per ROS_RUNS entry (below; camera_publish: serialized, the default, or
#             message, see bench_node.py; camera_receivers: the node parameter, default auto);
#             then once per ROS_EMULATED entry with a stand-in model of that cost (BASE:PER_FRAME
#             ms, bench_node.py --emulate-gpu), the node's and DDS's share on this host;
#   transport with ros (after its install): the DDS transport alone on this host, 4 x 720p at
#             30 Hz between two Python processes (bench_transport.py, reliable QoS), the part
#             of the node's latency before its callback;
#   latency   where detect() spends its time with the shipped weights on real frames (FRAMES)
#             at LATENCY_SIZES (default 640x640 and 384x640), batch 1 and 16 unless
#             LATENCY_OPTIONS says otherwise, plus operator and kernel tables for batch 1
#             (benchmarks/gpu_profile.py);
#   distill   label DISTILL_SOURCE with the teacher (TF.js files in TEACHER_DIR), train demo
#             weights, run the held-out report; the fp16 weights come back in 15 MiB pieces
#             (join with cat).
# Every stage has its own time limit so one slow stage cannot eat the others' time.
# Usage: OUT=/path STAGES="check distill" bash benchmarks/gpu_session.sh
#
# The device tool carries at most 64 MiB per call (the repository is ~35 MB), so inputs come in
# pieces over consecutive calls on the warm machine (each call copies what it carries to /tmp).
# Prepare here, in .dev_ros/ (ignored through .git/info/exclude):
#   .venv/bin/python tools/offline_wheels.py .dev_ros --python-version 3.12 --pieces 2
#   .venv/bin/python benchmarks/gpu_frames.py ~/.cache/togethernet_ros/vtest.avi .dev_ros/frames
# (already there? .dev_ros/part1 and part2 with the pinned versions, and the 16 frames, need
# no second download), then call 1 carries .dev_ros/part1 + .dev_ros/frames with
# STAGES="check latency" CHECK_TIMEOUT=130 LATENCY_TIMEOUT=80 (timeout_s ~240), and call 2,
# as the very next tool call (the machine stays warm for only 30 s), carries .dev_ros/part2 +
# .dev_ros/frames with STAGES="ros transport" ROS_WHEELS_EXPECTED=<part1 + part2 file count>
# (timeout_s ~420: a killed call returns only 8 of its files). A 2-core development machine cannot stand in for the GPU host's
# 16 cores when comparing camera_receivers (receiver processes need a core each).
set -u
OUT=${OUT:-/tmp/gpu_session}
STAGES=${STAGES:-"check train pipeline distill"}
DISTILL_SOURCE=${DISTILL_SOURCE:-.dev1/vtest.avi}
TEACHER_DIR=${TEACHER_DIR:-.dev1/teacher}
DISTILL_SECONDS=${DISTILL_SECONDS:-400}
DISTILL_EPOCHS=${DISTILL_EPOCHS:-90}
DISTILL_SIZE=${DISTILL_SIZE:-384}
# Cross-class duplicates are merged by default now, so the shipped labels need no bus threshold.
DISTILL_OPTIONS=${DISTILL_OPTIONS:-"--truck-as-car"}
ROS_WHEEL_DIRS=${ROS_WHEEL_DIRS:-".dev_ros/part1 .dev_ros/part2"}
ROS_SECONDS=${ROS_SECONDS:-45}
# Node runs of the ros stage, each
# "max_batch_wait_ms:prepare_frames_ahead[:camera_publish[:camera_receivers[:phase[:gil_switch_interval_ms]]]]"
# (an empty field takes its default; with a phase, the run is made in that camera phase only).
ROS_RUNS=${ROS_RUNS:-"1:true::executor 1:true::processes"}
# Runs of the ros stage with bench_node.py --emulate-gpu BASE:PER_FRAME (the node over DDS with
# a stand-in model timed like this GPU; "" for none).
ROS_EMULATED=${ROS_EMULATED-"2.2:0.8"}
# What the cameras of those emulated runs send (bench_node.py --camera-format): raw bgr8, and/or
# jpeg (CompressedImage: the node's decode threads, several cameras at once on this host).
ROS_EMULATED_FORMATS=${ROS_EMULATED_FORMATS:-"raw"}
# Camera phases every node run of the ros stage is repeated with (bench_node.py --camera-phase):
# triggered together (the transport's worst case) and spread over the period (batching's).
ROS_CAMERA_PHASES=${ROS_CAMERA_PHASES:-"synchronized staggered"}
# Input sizes ("H W", comma-separated) the latency stage profiles.
LATENCY_SIZES=${LATENCY_SIZES:-"640 640,384 640"}
# More gpu_profile options for those rows, e.g. "--batches 1 4 --frame-size 1280 720" (the node's).
LATENCY_OPTIONS=${LATENCY_OPTIONS:-}
# Seconds per latency run (raise it with --compile, which compiles once per batch size).
LATENCY_TIMEOUT=${LATENCY_TIMEOUT:-120}
ROS_NODE_OPTIONS=${ROS_NODE_OPTIONS:-"--device cuda --precision fp16"}
# Real frames (an image, a folder or a video) for the check and latency stages: 16 JPEGs of
# vtest.avi (2 MB) fit beside a wheel piece where the video (8 MB) does not.
FRAMES=${FRAMES:-.dev_ros/frames}
# The frame the cameras send (an image or a video's middle frame); random noise when absent.
ROS_IMAGE=${ROS_IMAGE:-$FRAMES/vtest_0400.jpg}
ORT_ARCHIVE=${ORT_ARCHIVE:-}
ORT_PIECE_DIRS=${ORT_PIECE_DIRS:-".dev_ort/part1 .dev_ort/part2 .dev_ort/part3"}
# Default: the shipped demo weights on real footage (realistic activations and box counts).
CHECK_OPTIONS=${CHECK_OPTIONS:-"--weights models/togethernet_vtest_384.pt --source $FRAMES"}
# Seconds for the check stage (raise it when CHECK_OPTIONS has --compile MODE).
CHECK_TIMEOUT=${CHECK_TIMEOUT:-240}
# Wheel files the ros stage needs in /tmp/ros_wheels from all pieces (part1 + part2 file
# counts); "" skips the count check.
ROS_WHEELS_EXPECTED=${ROS_WHEELS_EXPECTED:-}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# Every call copies whatever wheel pieces it carries, first, so the pieces can come in several
# calls and a call killed at its time limit has still left its piece for the next one.
mkdir -p /tmp/ros_wheels
for dir in $ROS_WHEEL_DIRS; do [ -d "$dir" ] && cp "$dir"/*.whl "$dir"/*.tar.gz /tmp/ros_wheels/ 2>/dev/null; done
has_stage() { [[ " $STAGES " == *" $1 "* ]]; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"

# onnxruntime-gpu pieces (benchmarks/ort_gpu_carry.py) may come in several calls, like the wheels.
mkdir -p /tmp/ort_pieces
for dir in $ORT_PIECE_DIRS; do [ -d "$dir" ] && cp "$dir"/* /tmp/ort_pieces/ 2>/dev/null; done
if has_stage ort; then
  if [ -z "$ORT_ARCHIVE" ]; then
    ORT_ARCHIVE=/tmp/ort.tar.zst
    # shellcheck disable=SC2012  # piece names are ort.part0, ort.part1, ...
    cat $(ls /tmp/ort_pieces/ort.part* | sort -V) > "$ORT_ARCHIVE"
    echo "$(cat /tmp/ort_pieces/ort.sha256)  $ORT_ARCHIVE" | sha256sum -c - || exit 1
  fi
  echo "=== onnxruntime-gpu from $ORT_ARCHIVE ==="
  ZSTD=zstd
  if ! command -v zstd > /dev/null && [ -x /tmp/ort_pieces/zstd ]; then
    ZSTD="env LD_LIBRARY_PATH=/tmp/ort_pieces /tmp/ort_pieces/zstd"
  fi
  mkdir -p /tmp/ortsite
  $ZSTD -d -q -c "$ORT_ARCHIVE" | tar xf - -C /tmp/ortsite && export PYTHONPATH="/tmp/ortsite:$PYTHONPATH"
fi
python3 -c "import torch, onnxruntime as ort; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'ort', ort.__version__, ort.get_available_providers())" | tee -a "$OUT/gpu.txt"
# The ros stage builds vision_msgs' C extension: it needs Python's headers.
python3 -c "import sysconfig, os; path = sysconfig.get_paths()['include']; print('python headers', path, os.path.isfile(os.path.join(path, 'Python.h')))" | tee -a "$OUT/gpu.txt"

if has_stage check; then
  echo "=== inference check ==="
  # shellcheck disable=SC2086  # CHECK_OPTIONS is a list of options
  timeout "$CHECK_TIMEOUT" python3 benchmarks/gpu_check.py $CHECK_OPTIONS --out "$OUT/gpu_check.json" > "$OUT/gpu_check.log" 2>&1
  echo "rc=$?"; grep -v "^\s*$" "$OUT/gpu_check.log" | tail -n 30
fi

if has_stage train; then
  echo "=== training throughput ==="
  timeout 90 python3 benchmarks/gpu_train_check.py --steps 30 --out "$OUT/gpu_train.json" > "$OUT/gpu_train.log" 2>&1
  echo "rc=$?"; tail -n 8 "$OUT/gpu_train.log"
fi

if has_stage pipeline; then
  echo "=== node processing path, 4 x 720p at 30 Hz (no DDS) ==="
  for variant in prepare-ahead no-prepare-ahead no-forecast; do
    timeout 60 python3 benchmarks/gpu_pipeline_check.py --seconds 20 --max-batch-wait-ms 1 --$variant \
      --out "$OUT/gpu_pipeline_$variant.json" > "$OUT/gpu_pipeline_$variant.log" 2>&1
    echo "rc=$? $variant"; tail -n 22 "$OUT/gpu_pipeline_$variant.log"
  done
fi

if has_stage latency; then
  echo "=== detect() stage times, shipped weights on a real frame ==="
  LATENCY_SOURCE=$DISTILL_SOURCE
  [ -e "$FRAMES" ] && LATENCY_SOURCE=$FRAMES
  IFS=, read -r -a latency_sizes <<< "$LATENCY_SIZES"
  for size in "${latency_sizes[@]}"; do
    name=profile_${size// /x}
    # shellcheck disable=SC2086  # size is "H W", LATENCY_OPTIONS a list of options
    # The log stays behind (at most 8 files come back); the JSON and operator table hold it all.
    timeout "$LATENCY_TIMEOUT" python3 benchmarks/gpu_profile.py --trained-only --weights models/togethernet_vtest_384.pt \
      --source "$LATENCY_SOURCE" --input-size $size --iterations 200 $LATENCY_OPTIONS \
      --out "$OUT/$name.json" > "/tmp/$name.log" 2>&1
    echo "rc=$? size=$size"; grep -E '^\{' "/tmp/$name.log" | cut -c1-400; tail -n 3 "/tmp/$name.log"
  done
fi

if has_stage ros && [ -n "$ROS_WHEELS_EXPECTED" ] \
  && [ "$(find /tmp/ros_wheels -maxdepth 1 -type f | wc -l)" -lt "$ROS_WHEELS_EXPECTED" ]; then
  # A fresh machine, not the warm one an earlier call left its piece on: say so at once
  # instead of spending minutes on an install that cannot finish.
  echo "ros stage skipped: $(find /tmp/ros_wheels -maxdepth 1 -type f | wc -l) of" \
    "$ROS_WHEELS_EXPECTED wheel files in /tmp/ros_wheels (an earlier piece is missing: not the" \
    "warm machine of the previous call)" | tee -a "$OUT/gpu.txt"
  STAGES=${STAGES// ros/}; STAGES=${STAGES//ros /}; STAGES=${STAGES/#ros/}
fi
if has_stage ros; then
  echo "=== ROS 2 offline install, then detector_node on the GPU over DDS ==="
  timeout 240 python3 tools/setup_env.py --offline-wheels /tmp/ros_wheels > "$OUT/ros_setup.log" 2>&1
  echo "rc=$?"; tail -n 3 "$OUT/ros_setup.log"
  if has_stage transport; then
    timeout 90 .venv/bin/python benchmarks/bench_transport.py --cameras 4 --rate 30 --seconds 15 \
      --qos reliable --json "$OUT/transport.json" > "$OUT/transport.log" 2>&1
    echo "rc=$? transport"; tail -n 6 "$OUT/transport.log"
  fi
  IMAGE_OPTION=""
  [ -f "$ROS_IMAGE" ] && IMAGE_OPTION="--image $ROS_IMAGE"
  for phase in $ROS_CAMERA_PHASES; do
    for run in $ROS_RUNS; do
      IFS=: read -r wait_ms prepare publish receivers only_phase switch_ms <<< "$run"
      [ -n "$only_phase" ] && [ "$only_phase" != "$phase" ] && continue
      prepare=${prepare:-true} publish=${publish:-serialized} receivers=${receivers:-auto}
      switch_ms=${switch_ms:-0}
      name=node_gpu_wait${wait_ms}_${receivers}_switch${switch_ms}_${publish}_prepare_${prepare}_$phase
      # shellcheck disable=SC2086  # ROS_NODE_OPTIONS and IMAGE_OPTION are lists of options
      # -k: rclpy handles SIGTERM itself (shuts its context down), so a hung run needs a KILL.
      timeout -k 10 $((ROS_SECONDS + 120)) .venv/bin/python benchmarks/bench_node.py soak --seconds "$ROS_SECONDS" \
        --cameras 4 $ROS_NODE_OPTIONS --max-batch-wait-ms "$wait_ms" --camera-phase "$phase" \
        --param "prepare_frames_ahead:=$prepare" --param "camera_receivers:=$receivers" \
        --param "gil_switch_interval_ms:=$switch_ms" \
        --camera-publish "$publish" $IMAGE_OPTION --out "$OUT/$name.json" > "$OUT/$name.log" 2>&1
      echo "rc=$? wait=$wait_ms prepare_frames_ahead=$prepare camera_publish=$publish camera_receivers=$receivers gil_switch_interval_ms=$switch_ms cameras $phase"
      grep -E "backend|frames_|latency|dropped|rss_last|exit" "$OUT/$name.log"
    done
    # The same node with a stand-in model of the GPU's cost shape on this host: where it meets
    # the target and the real one does not, CUDA's share of the GIL is to blame, not DDS.
    for cost in $ROS_EMULATED; do
      for format in $ROS_EMULATED_FORMATS; do
        name=node_emulated_gpu_${cost/:/_}_${format}_$phase
        # shellcheck disable=SC2086  # IMAGE_OPTION is a list of options
        timeout -k 10 $((ROS_SECONDS + 120)) .venv/bin/python benchmarks/bench_node.py soak --seconds "$ROS_SECONDS" \
          --cameras 4 --weights "" --emulate-gpu "$cost" --camera-phase "$phase" $IMAGE_OPTION \
          --camera-format "$format" --out "$OUT/$name.json" > "$OUT/$name.log" 2>&1
        echo "rc=$? emulated GPU $cost ms, $format cameras $phase"
        grep -E "backend|frames_|latency|dropped|exit" "$OUT/$name.log"
      done
    done
  done
fi

if has_stage distill; then
  echo "=== distillation (demo weights) ==="
  WEIGHTS=/tmp/distill/togethernet_vtest_${DISTILL_SIZE}.pt
  mkdir -p /tmp/teacher/teacher && cp "$TEACHER_DIR"/nanodet.json "$TEACHER_DIR"/nanodet.bin /tmp/teacher/teacher/
  rm -rf /tmp/distill  # a finished run there is refused (a fresh machine has none)
  # shellcheck disable=SC2086  # DISTILL_OPTIONS is a list of options
  timeout "$DISTILL_SECONDS" python3 -m togethernet_ros.cli distill "$DISTILL_SOURCE" \
    --cache-dir /tmp/teacher $DISTILL_OPTIONS \
    --device cuda --amp bf16 --batch-size 32 --workers 12 --input-size "$DISTILL_SIZE" \
    --epochs "$DISTILL_EPOCHS" --train-override train.lr=0.04 --output /tmp/distill \
    --weights-out "$WEIGHTS" > "$OUT/distill.log" 2>&1
  echo "rc=$?"; grep -v "it/s\]" "$OUT/distill.log" | tail -n 30
  if [ ! -f "$WEIGHTS" ] && [ -f /tmp/distill/train/last.pt ]; then
    # Stopped by its time limit: keep the last epoch's weights (fp16, no optimizer state).
    python3 - "$WEIGHTS" <<'PY'
import sys
from togethernet_ros.model.checkpoint import load_checkpoint, save_checkpoint
loaded = load_checkpoint("/tmp/distill/train/last.pt")
save_checkpoint(sys.argv[1], loaded.model.half(), loaded.class_names,
                metadata={**loaded.metadata, "note": "last epoch before the time limit"})
PY
  fi
  if [ -f "$WEIGHTS" ]; then
    split -b 15M -d "$WEIGHTS" "$OUT/weights.part"
    cp "${WEIGHTS%.pt}.md" "$OUT/model_card.md" 2>/dev/null
    cp /tmp/distill/*.json "$OUT/" 2>/dev/null
    sha256sum "$WEIGHTS" | tee "$OUT/weights.sha256"
  fi
fi
ls -la "$OUT"
# The device tool brings back at most 8 files: with more, everything comes back in one archive.
if [ "$(find "$OUT" -type f | wc -l)" -gt 8 ]; then
  tar czf /tmp/gpu_results.tgz -C "$OUT" . && find "$OUT" -mindepth 1 -delete \
    && mv /tmp/gpu_results.tgz "$OUT/gpu_results.tgz" && echo "packed into $OUT/gpu_results.tgz"
fi

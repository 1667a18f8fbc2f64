"""ONNX Runtime backend: TensorRT -> CUDA -> CPU execution providers, IO binding on the GPU.

Uses the detection-only file for `restore=False` (the decoder is a separate graph, so skipping
it really saves its time) and the with-restoration file for `restore=True`; each session is
created on first use. On a GPU, when torch also sees CUDA, pre-processing runs on the device
and ORT reads the input from, and writes the outputs into, torch CUDA tensors through IO
binding (no host round trip); without torch CUDA, the input is bound from host memory.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from togethernet_ros.inference.detector import DEFAULT_MAX_DETECTIONS
from togethernet_ros.inference.detector_base import STRIDES, DetectorBase
from togethernet_ros.inference.export import (
    DEHAZED_OUTPUT_NAME,
    INPUT_NAME,
    MAP_OUTPUT_NAMES,
    OnnxModelInfo,
    onnx_variant_paths,
    read_onnx_info,
)
from togethernet_ros.inference.factory import default_cache_dir
from togethernet_ros.inference.onnx_providers import (
    CPU,
    TENSORRT,
    clear_engine_cache,
    engine_cache_dir,
    engine_cache_lock,
    provider_chains,
)
from togethernet_ros.model import UntrainedWeightsError
from togethernet_ros.pipeline.usable_cpus import usable_cpus

LOGGER = logging.getLogger("togethernet_ros")
TORCH_TYPES = {"float32": torch.float32, "float16": torch.float16}


class OnnxRuntimeDetector(DetectorBase):
    """Detector over an exported ONNX pair (see `togethernet_ros.inference.export`)."""

    def __init__(
        self,
        onnx_path: str | Path,
        *,
        device: str = "cpu",
        precision: str = "fp32",
        input_size: tuple[int, int] | None = None,
        conf_threshold: float = 0.5,
        nms_threshold: float = 0.3,
        color_order: str = "bgr",
        cache_dir: str | Path | None = None,
        allow_untrained: bool = False,
        max_batch_size: int = 16,
        num_threads: int | None = None,
        max_detections: int | None = DEFAULT_MAX_DETECTIONS,
    ) -> None:
        import onnxruntime as ort

        self._ort = ort
        if precision not in ("auto", "fp32", "fp16"):
            raise ValueError(f"precision must be 'auto', 'fp32' or 'fp16', got {precision!r}")
        if device != "cpu" and not device.startswith("cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
        self.files = self._read_pair(onnx_path)
        first = next(iter(self.files.values()))
        if first.untrained and not allow_untrained:
            raise UntrainedWeightsError(
                f"{first.path} was exported from UNTRAINED (random) weights; its outputs are "
                "meaningless. Pass allow_untrained=True (--allow-untrained) to run it anyway."
            )
        if input_size is not None and tuple(input_size) != first.input_size:
            raise ValueError(
                f"input size {tuple(input_size)} requested but {first.path} was exported for "
                f"{first.input_size}; re-export with --input-size or drop the option"
            )
        self.device_name = device
        self.precision = precision
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.num_threads = num_threads
        self._sessions: dict[bool, object] = {}
        self._session_files: dict[bool, OnnxModelInfo] = {}
        # Providers actually running each session, kept after close() for diagnostics.
        self._detection_provider: str | None = None
        self._restoration_provider: str | None = None
        max_batch_size = self._fit_fixed_batch(max_batch_size)
        self._closed = False
        gpu_preprocess = device.startswith("cuda") and torch.cuda.is_available()
        super().__init__(
            first.class_names,
            first.input_size,
            backend="onnxruntime",
            conf_threshold=conf_threshold,
            nms_threshold=nms_threshold,
            color_order=color_order,
            preprocess_device=torch.device(device) if gpu_preprocess else "cpu",
            max_batch_size=max_batch_size,
            max_detections=max_detections,
        )
        self.untrained = first.untrained
        # Open the session that restore=False uses now, so `backend` names the real provider.
        self._session(restore=False)
        if gpu_preprocess and self.provider == CPU:
            # ONNX Runtime fell back to the CPU: letterboxing on the GPU would only add a copy
            # of the float batch back to the host per call.
            self.preprocess_device = torch.device("cpu")

    def _read_pair(self, onnx_path: str | Path) -> dict[bool, OnnxModelInfo]:
        """Metadata of the existing files of the pair, keyed by `restore`."""
        files: dict[bool, OnnxModelInfo] = {}
        if Path(onnx_path).is_dir():
            raise ValueError(f"ONNX path {onnx_path} is a folder; give the .onnx file in it")
        for candidate in onnx_variant_paths(onnx_path):
            if candidate.is_file():
                info = read_onnx_info(candidate)
                files[info.restore] = info
        if not files:
            raise FileNotFoundError(
                f"ONNX model not found: {onnx_path} (nor the other file of its pair); "
                "create it with `togethernet export`"
            )
        infos = list(files.values())
        if len(infos) == 2:
            hashes = [info.metadata.get("weights_sha256", "") for info in infos]
            if (
                infos[0].input_size != infos[1].input_size
                or infos[0].class_names != infos[1].class_names
                # A file left from an earlier export of other weights (`--variant restore`
                # rewrites only one file): detections would come from one model, dehazed
                # images from another.
                or (all(hashes) and hashes[0] != hashes[1])
            ):
                raise ValueError(
                    f"{infos[0].path} and {infos[1].path} come from different exports "
                    f"(input {infos[0].input_size} vs {infos[1].input_size}, classes "
                    f"{list(infos[0].class_names)} vs {list(infos[1].class_names)}, weights "
                    f"sha256 {hashes[0][:16] or '?'} vs {hashes[1][:16] or '?'}); export "
                    "them together (togethernet export --variant both) or delete the stale one"
                )
        return files

    def _fit_fixed_batch(self, max_batch_size: int) -> int:
        """``max_batch_size`` capped to a batch size the files fix (dynamic in our exports).

        Larger batches are split by `detect`, smaller ones padded up to it in `_forward`.
        """
        fixed = [
            info.signature.fixed_batch
            for info in self.files.values()
            if info.signature.fixed_batch is not None
        ]
        if not fixed or max_batch_size <= min(fixed):
            return max_batch_size
        LOGGER.warning(
            "%s has a fixed batch size of %d (not dynamic, as `togethernet export` writes it): "
            "batches are split to %d images",
            next(info.path for info in self.files.values() if info.signature.fixed_batch),
            min(fixed),
            min(fixed),
        )
        return min(fixed)

    @property
    def supports_restoration(self) -> bool:
        """True when the with-restoration file of the pair was exported."""
        return True in self.files

    @property
    def runs_on_gpu(self) -> bool:
        """True unless ONNX Runtime fell back to (or was asked for) the CPU provider."""
        return self.provider != CPU

    @property
    def provider(self) -> str:
        """The execution provider that actually runs the detection session."""
        if self._detection_provider is None:
            self._session(restore=False)  # records it
        return self._detection_provider

    def _session(self, restore: bool) -> object:
        if restore in self._sessions:
            return self._sessions[restore]
        if self._closed:
            # A new session would load the model (and its GPU memory) the caller just freed.
            raise RuntimeError("detector is closed")
        if restore:
            if True not in self.files:
                restore_path, _ = onnx_variant_paths(self.files[False].path)
                raise ValueError(
                    f"dehazed output needs the with-restoration model {restore_path}, but only "
                    f"the detection-only {self.files[False].path} exists; export both variants "
                    "(togethernet export --variant both) or turn dehazed output off"
                )
            info = self.files[True]
        else:
            info = self.files.get(False)
            if info is None:
                info = self.files[True]
                LOGGER.warning(
                    "no detection-only ONNX next to %s: restore=False runs the full graph "
                    "(no speed-up); export both variants to fix this",
                    info.path,
                )
        if self._session_files.get(not restore) is info:
            # Only the with-restoration file exists: one session serves both, loaded once.
            session = self._sessions[not restore]
        else:
            session = self._create_session(info)
        self._sessions[restore] = session
        self._session_files[restore] = info
        used = session.get_providers()[0]
        if restore:
            self._restoration_provider = used
        else:
            self._detection_provider = used
            if self.device_name.startswith("cuda") and used == CPU:
                LOGGER.warning(
                    "device %s requested, but onnxruntime falls back to the CPU", self.device_name
                )
            if self.precision == "fp16" and used != TENSORRT:
                LOGGER.warning("fp16 needs the TensorRT provider; %s runs in fp32", used)
        self._update_backend_name()
        return session

    def _create_session(self, info: OnnxModelInfo) -> object:
        ort = self._ort
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # 0 is ONNX Runtime's own choice; usable_cpus() honours taskset and a container's
        # CPU quota, where os.cpu_count() would start a thread per host core.
        options.intra_op_num_threads = self.num_threads or usable_cpus() or 0
        options.inter_op_num_threads = 1
        # Not next to the model by default: a downloaded model folder could ship a "cached"
        # engine for TensorRT to deserialize, and an installed package folder is read-only.
        cache_dir = self.cache_dir or default_cache_dir()
        available = ort.get_available_providers()
        if info.metadata.get("precision") == "int8" and TENSORRT in available:
            # The int8 export quantizes activations to uint8 with non-zero zero points, which
            # TensorRT's ONNX parser rejects (symmetric int8 only): the session fails, or the
            # graph is split around the Q/DQ nodes and the explicit batch profile then fails.
            LOGGER.warning(
                "%s is an int8 (uint8, asymmetric Q/DQ) export, which TensorRT cannot run; "
                "trying the CUDA provider",
                info.path.name,
            )
            available = [name for name in available if name != TENSORRT]
        engine_dir = None
        if self.device_name != "cpu" and TENSORRT in available:
            try:
                batches = info.signature.fixed_batch or self.max_batch_size
                # As TensorRT builds it: "auto" and "fp16" both enable fp16 (provider_chains).
                fp16 = self.precision in ("auto", "fp16")
                build = f"b{batches}_{'fp16' if fp16 else 'fp32'}"
                engine_dir = engine_cache_dir(cache_dir, info.path, build)
            except OSError as error:  # e.g. a read-only cache: build engines, just keep none
                LOGGER.warning(
                    "cannot create the TensorRT engine cache in %s (%s): engines are rebuilt "
                    "at every start; set engine_cache_dir (--cache-dir) to a writable folder",
                    cache_dir,
                    error.strerror or error,
                )
        chains = provider_chains(
            self.device_name,
            self.precision,
            cache_dir,
            self.input_size,
            self.max_batch_size,
            available,
            engine_dir=engine_dir,
            cache_engines=engine_dir is not None,
            fixed_batch=info.signature.fixed_batch,
        )
        if engine_dir is None:
            return self._first_session(info, options, chains, None)
        with engine_cache_lock(engine_dir):
            return self._first_session(info, options, chains, engine_dir)

    def _first_session(
        self,
        info: OnnxModelInfo,
        options: object,
        chains: list,
        engine_dir: Path | None,
    ) -> object:
        """The session of the first provider chain that initialises."""
        ort = self._ort
        failures = []
        retried = False
        index = 0
        while index < len(chains):
            chain = chains[index]
            index += 1
            wanted = chain[0][0]
            try:
                session = ort.InferenceSession(
                    str(info.path),
                    sess_options=options,
                    providers=[name for name, _ in chain],
                    provider_options=[opts for _, opts in chain],
                    # Without this, a RuntimeError (e.g. from the TensorRT provider's set-up)
                    # makes onnxruntime print to stdout and silently build a second session on
                    # its fallback providers with NO options (CUDA on device 0, our device_id,
                    # TF32 and cache settings lost). The chains here are the fallback.
                    enable_fallback=0,
                )
            except Exception as error:  # provider libraries missing or failing to initialise
                if wanted == TENSORRT and engine_dir is not None and not retried:
                    # A cached engine (or timing cache) that does not load: torn by a build
                    # that was killed or ran out of disk, or from another TensorRT. onnxruntime
                    # fails on it at every start and never rebuilds it; rebuild it once here.
                    removed = clear_engine_cache(engine_dir) if _about_engines(error) else []
                    if removed:
                        LOGGER.warning(
                            "onnxruntime: %s; removed the TensorRT cache files %s in %s and "
                            "builds them again",
                            (str(error).strip().splitlines() or [type(error).__name__])[0],
                            removed,
                            engine_dir,
                        )
                        retried = True
                        index -= 1
                        continue
                LOGGER.warning(
                    "onnxruntime: %s unavailable (%s); trying the next provider", wanted, error
                )
                detail = str(error).strip().splitlines()
                failures.append(f"{wanted}: {detail[0] if detail else type(error).__name__}")
                continue
            providers = session.get_providers()
            used = providers[0]
            if used != wanted:
                # onnxruntime skips a provider whose library does not load (TensorRT without
                # libnvinfer) with only a log line. What is left was built with this chain's
                # options: when that is exactly a later chain, keep it rather than build it again.
                later = [[name for name, _ in other] for other in chains[index:]]
                if providers in later:
                    LOGGER.warning(
                        "onnxruntime: %s did not initialise; %s runs %s",
                        wanted,
                        used,
                        info.path.name,
                    )
                    return session
                LOGGER.warning(
                    "onnxruntime: %s did not initialise; trying the next provider", wanted
                )
                failures.append(f"{wanted}: did not initialise (session fell back to {used})")
                continue
            LOGGER.info("onnxruntime runs %s with %s", info.path.name, used)
            return session
        # Keep the reason: a broken graph fails on the CPU too, and that is the user's answer.
        raise RuntimeError(
            f"onnxruntime could not load {info.path}: {'; '.join(failures) or 'no provider'}"
        )

    def _update_backend_name(self) -> None:
        used = self._detection_provider
        if used is None:  # the restoration session came first: named when detection's comes
            return
        # "auto" takes fp16 where TensorRT runs and the provider's own precision elsewhere.
        fp16 = self.precision in ("auto", "fp16") and used == TENSORRT
        # An int8 export (`togethernet export --int8-calibration`) says so in its metadata.
        int8 = next(iter(self.files.values())).metadata.get("precision") == "int8"
        suffix = "-int8" if int8 else "-fp16" if fp16 else ""
        self.backend = f"onnxruntime-{used}{suffix}"
        restoring = self._restoration_provider
        if restoring is not None and restoring != used:
            # E.g. TensorRT cannot build the decoder and its session fell back to the CPU:
            # every batch with dehazed output then runs the whole model there. Both providers
            # are known only once the second session exists, so this warns once.
            LOGGER.warning(
                "the with-restoration model runs on %s, detection on %s: batches with "
                "dehazed output are that much slower",
                restoring,
                used,
            )
            self.backend += f" (restoration: {restoring})"

    def _forward(
        self, batch: torch.Tensor, restore: bool
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        if self._closed:
            raise RuntimeError("detector is closed")
        session = self._session(restore)
        signature = self._session_files[restore].signature
        names = [*MAP_OUTPUT_NAMES, *([DEHAZED_OUTPUT_NAME] if restore else [])]
        count = batch.shape[0]
        if signature.fixed_batch is not None and count < signature.fixed_batch:
            # A file with a fixed batch takes exactly that many images: pad with blank inputs.
            padding = batch.new_zeros((signature.fixed_batch - count, *batch.shape[1:]))
            batch = torch.cat([batch, padding])
        # A float16 conversion of an export (e.g. onnxconverter-common) takes and gives fp16.
        batch = batch.to(TORCH_TYPES[signature.input_type])
        on_gpu = session.get_providers()[0] != CPU
        try:
            if on_gpu and batch.device.type == "cuda":
                outputs = self._run_bound_to_torch(session, batch, names, signature.output_types)
            elif on_gpu:
                outputs = self._run_bound_to_host(session, batch, names)
            else:
                arrays = session.run(names, {INPUT_NAME: batch.cpu().numpy()})
                outputs = [torch.from_numpy(array) for array in arrays]
        except Exception as error:
            # ONNX Runtime's errors (out of GPU memory, a TensorRT failure) derive from
            # Exception only: named as a RuntimeError, the CLI reports them in one line.
            if not type(error).__module__.startswith("onnxruntime"):
                raise
            path = self._session_files[restore].path
            raise RuntimeError(
                f"onnxruntime failed running {path.name} on a batch of {count}: "
                f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0][:300]}"
            ) from error
        outputs = [output[:count].float() for output in outputs]
        return outputs[:3], (outputs[3] if restore else None)

    def _output_shapes(self, batch_size: int, num_channels: int) -> dict[str, tuple[int, ...]]:
        height, width = self.input_size
        shapes = {
            name: (batch_size, num_channels, height // stride, width // stride)
            for name, stride in zip(MAP_OUTPUT_NAMES, STRIDES, strict=True)
        }
        shapes[DEHAZED_OUTPUT_NAME] = (batch_size, 3, height, width)
        return shapes

    def _run_bound_to_torch(
        self,
        session: object,
        batch: torch.Tensor,
        names: list[str],
        output_types: dict[str, str],
    ) -> list[torch.Tensor]:
        """IO binding straight between torch CUDA tensors and the ORT session."""
        batch = batch.contiguous()
        device_id = batch.device.index or 0
        binding = session.io_binding()
        input_type = np.float16 if batch.dtype == torch.float16 else np.float32
        binding.bind_input(
            INPUT_NAME, "cuda", device_id, input_type, tuple(batch.shape), batch.data_ptr()
        )
        shapes = self._output_shapes(batch.shape[0], 5 + len(self.class_names))
        outputs = []
        for name in names:
            dtype = TORCH_TYPES[output_types.get(name, "float32")]
            tensor = torch.empty(shapes[name], dtype=dtype, device=batch.device)
            numpy_type = np.float16 if dtype == torch.float16 else np.float32
            binding.bind_output(
                name, "cuda", device_id, numpy_type, shapes[name], tensor.data_ptr()
            )
            outputs.append(tensor)
        # ORT works on its own stream: make sure torch's pre-processing has finished.
        torch.cuda.current_stream(batch.device).synchronize()
        session.run_with_iobinding(binding)
        # ...and that ORT's writes into the torch tensors have landed before torch reads them.
        # Not binding.synchronize_outputs(): it calls Sync() on the providers that produce the
        # outputs, which the TensorRT provider does not implement (a no-op there). A device
        # synchronisation waits for ORT's streams whichever provider ran (cheap: run is done).
        torch.cuda.synchronize(batch.device)
        return outputs

    def _run_bound_to_host(
        self, session: object, batch: torch.Tensor, names: list[str]
    ) -> list[torch.Tensor]:
        """IO binding from host memory (torch without CUDA): ORT uploads and downloads once."""
        binding = session.io_binding()
        binding.bind_cpu_input(INPUT_NAME, batch.cpu().numpy())
        for name in names:
            binding.bind_output(name, "cpu")
        session.run_with_iobinding(binding)
        return [torch.from_numpy(array) for array in binding.copy_outputs_to_cpu()]

    def close(self) -> None:
        """Drop the sessions (frees their GPU memory and arenas)."""
        self._sessions.clear()
        self._closed = True


def _about_engines(error: Exception) -> bool:
    """Whether a TensorRT session error is about a cached engine or timing cache that does not
    load ("could not deserialize engine from cache", "Engine deserialization failed", ...).

    Not any error naming an engine: "could not build engine for fused node" (out of memory, an
    unsupported op) would delete good cached engines and fail the same way again.
    """
    text = str(error).lower()
    return "deserializ" in text or "timing cache" in text

# ser-tf: every target that needs the environment depends on `install`, so on a fresh
# clone `make test` alone sets everything up. `install` is idempotent: its stamp file is
# newer than setup.cfg once done, and then it does nothing.

PYTHON_VERSION ?= 3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
APT_PACKAGES := espeak-ng libespeak-ng-libespeak-dev ffmpeg festival-dev libestools-dev
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
EXTRAS ?= dev,lite,align,tuning,wav2vec2
# The committed run records. `ser-tf train` alone writes to the user's data folder
# ($SER_TF_RESULTS or ~/.local/share/ser-tf/results); the targets below that make or read
# the repository's records name this folder explicitly.
RESULTS_DIR := experiments/results

.PHONY: install system-deps test test-all test-unit test-integration demo clean-venv help reproduce-lightsernet reproduce-timnet bench-lightsernet bench-ood

help:
	@echo "make demo     - classify a synthesised sentence with the shipped model"
	@echo "make test     - install (if needed) and run the test suite"
	@echo "make test-all - the same plus the heavy benchmark-harness tests"
	@echo "make install  - create .venv (Python $(PYTHON_VERSION)) with the pinned dependencies"
	@echo "make test-unit / test-integration - the tests without / with the shared corpora"
	@echo "make reproduce-lightsernet - Light-SERNet on EMO-DB: 6 runs x 10 folds (hours; resumes)"
	@echo "make reproduce-timnet      - TIM-Net on EMO-DB and RAVDESS (TIMNET_RUNS, TIMNET_EPOCHS)"
	@echo "make reproduce-cnn-family  - CNN family on RAVDESS: 6 paper + 2 speaker runs, noise scores, Hyperband (CORPORA=DIR: 4-corpus union too)"
	@echo "make reproduce-attention-fcn - Attention FCN: 1-D RAVDESS (paper, dB input; speaker, λ ablation), 2-D EMO-DB (speaker, λ ablation) and RAVDESS (speaker)"
	@echo "make reproduce-semantic    - Semantic SER: EMO-DB proxy, audio-only and fusion, speaker folds (SEWA_DIR=...: the paper's corpus)"
	@echo "make bench-lightsernet     - seconds per epoch, feature throughput, TFLite latency"
	@echo "make bench-ood             - out-of-domain detectors of the shipped EMO-DB models vs RAVDESS"
	@echo "make readmes / check-readmes - rewrite / check every paper README's tables from the run records"

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	@$(MAKE) --no-print-directory system-deps
	@command -v python$(PYTHON_VERSION) >/dev/null || { echo "python$(PYTHON_VERSION) not found"; exit 1; }
	@[ -x $(PY) ] || python$(PYTHON_VERSION) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	@touch $(STAMP)

# Installs only what is missing, so a machine that has them asks apt nothing.
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

# `make test` runs the tests in TEST_WORKERS processes (pytest-xdist; each test file stays
# in one worker, so its module fixtures are built once), each with one TensorFlow thread:
# two workers fill two cores without oversubscribing them. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
TEST_ENV := TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1

# -rs: every skipped test is listed with its reason (on a clean clone without
# ../shared/data the corpus checks skip: the list says which properties went unchecked).
test: install
	$(TEST_ENV) $(PY) -m pytest -q -rs --timeout=600 --durations=15 -m "not heavy" \
	  -n $(TEST_WORKERS) --dist loadfile

# Everything, with the benchmark harnesses that time full-size models (minutes more).
test-all: install
	$(PY) -m pytest -q --timeout=600 --durations=15

test-unit: install
	$(TEST_ENV) $(PY) -m pytest -q --timeout=600 -m "not integration and not heavy" \
	  -n $(TEST_WORKERS) --dist loadfile

test-integration: install
	$(PY) -m pytest -q --timeout=600 -m integration

demo: install
	$(PY) -m ser_tf.demo

# Light-SERNet on EMO-DB, 3 s MFCC: both losses under the paper protocol and under the
# speaker-independent one, cross-entropy first (the shipped models come from its speaker
# run). Hours on 2 cores; every run resumes where it stopped.
EMODB_DIR ?= $(if $(SER_TF_DATA),$(SER_TF_DATA)/emodb,data/emodb)
LIGHTSERNET_RUNS ?= cross_entropy:paper-time focal:paper-time cross_entropy:paper cross_entropy:speaker focal:paper focal:speaker
# The shipped models: `--ship` from this run (a final model trained on all ten speakers for
# the median of the epochs its speaker-independent folds chose; its card's expected UA is
# that cross-validation's). RAVDESS_DIR, when present, measures the out-of-domain warning.
LIGHTSERNET_SHIP ?= cross_entropy:speaker
reproduce-lightsernet: install
	@[ -d "$(EMODB_DIR)" ] || $(VENV)/bin/ser-tf data download emodb --dest "$(patsubst %/,%,$(dir $(EMODB_DIR)))"
	@for run in $(LIGHTSERNET_RUNS); do \
	  loss=$${run%%:*}; protocol=$${run##*:}; \
	  echo "== Light-SERNet EMO-DB 3 s MFCC, loss $$loss, protocol $$protocol"; \
	  $(PY) -m ser_tf.experiments.lightsernet --dataset EMODB --duration 3 --input mfcc \
	    --loss $$loss --protocol $$protocol --data-dir "$(EMODB_DIR)" \
	    --results-dir $(RESULTS_DIR) || exit 1; \
	done
	$(PY) -m ser_tf.experiments.lightsernet --dataset EMODB --duration 3 --input mfcc \
	  --loss $(firstword $(subst :, ,$(LIGHTSERNET_SHIP))) --protocol $(lastword $(subst :, ,$(LIGHTSERNET_SHIP))) \
	  --data-dir "$(EMODB_DIR)" --results-dir $(RESULTS_DIR) --ship \
	  $(if $(wildcard $(RAVDESS_DIR)),--ood-corpus RAVDESS=$(RAVDESS_DIR))
	$(VENV)/bin/ser-tf report --paper lightsernet --results $(RESULTS_DIR) \
	  --readme ser_tf/papers/lightsernet/README.md

# TIM-Net benchmarks: EMO-DB and RAVDESS under the paper protocol (authors' KFold seeds,
# epoch chosen on the test fold) and the speaker-independent one. Every run also scores its
# last epoch, the setting of the authors' corrected figures. Hours per run on 2 cores
# (EMO-DB ~2 h measured, RAVDESS ~6 h scaled by size, at 500 epochs); every run resumes.
RAVDESS_DIR ?= $(if $(SER_TF_DATA),$(SER_TF_DATA)/ravdess,data/ravdess)
TIMNET_RUNS ?= EMODB:paper EMODB:speaker RAVDESS:paper RAVDESS:speaker
TIMNET_EPOCHS ?= 500
# The ablation with the published code's compounded label smoothing (paper protocol), per
# corpus; empty: none.
TIMNET_COMPOUNDED ?= EMODB
# The shared RAVDESS is cut to 2.39 s: its shipped model's window is the copy's length
# (TIM-Net README, "Window"). Empty with the original release: the paper's 4.99 s.
TIMNET_RAVDESS_SHIP_WINDOW ?= 2.39
reproduce-timnet: install
	@for run in $(TIMNET_RUNS); do \
	  corpus=$${run%%:*}; protocol=$${run##*:}; \
	  case $$corpus in EMODB) dir="$(EMODB_DIR)";; RAVDESS) dir="$(RAVDESS_DIR)";; esac; \
	  [ -d "$$dir" ] || $(VENV)/bin/ser-tf data download $$(echo $$corpus | tr A-Z a-z) \
	    --dest "$$(dirname "$$dir")" || exit 1; \
	  echo "== TIM-Net $$corpus, protocol $$protocol, $(TIMNET_EPOCHS) epochs"; \
	  $(PY) -m ser_tf.experiments.timnet --dataset $$corpus --protocol $$protocol \
	    --epochs $(TIMNET_EPOCHS) --data-dir "$$dir" --results-dir $(RESULTS_DIR) || exit 1; \
	done
	@for corpus in $(TIMNET_COMPOUNDED); do \
	  case $$corpus in EMODB) dir="$(EMODB_DIR)";; RAVDESS) dir="$(RAVDESS_DIR)";; esac; \
	  echo "== TIM-Net $$corpus, protocol paper, compounded label smoothing (ablation)"; \
	  $(PY) -m ser_tf.experiments.timnet --dataset $$corpus --protocol paper \
	    --compounded-smoothing --epochs $(TIMNET_EPOCHS) --data-dir "$$dir" \
	    --results-dir $(RESULTS_DIR) || exit 1; \
	done
	@echo "== TIM-Net shipped models: EMO-DB, and RAVDESS with its window matched to the copy"
	$(PY) -m ser_tf.experiments.timnet --dataset EMODB --protocol speaker \
	  --epochs $(TIMNET_EPOCHS) --data-dir "$(EMODB_DIR)" --results-dir $(RESULTS_DIR) --ship \
	  $(if $(wildcard $(RAVDESS_DIR)),--ood-corpus RAVDESS=$(RAVDESS_DIR))
	$(PY) -m ser_tf.experiments.timnet --dataset RAVDESS --protocol speaker \
	  --epochs $(TIMNET_EPOCHS) $(TIMNET_RAVDESS_SHIP_WINDOW:%=--window %) \
	  --data-dir "$(RAVDESS_DIR)" --results-dir $(RESULTS_DIR)
	$(PY) -m ser_tf.experiments.timnet --dataset RAVDESS --protocol speaker \
	  --epochs $(TIMNET_EPOCHS) $(TIMNET_RAVDESS_SHIP_WINDOW:%=--window %) \
	  --data-dir "$(RAVDESS_DIR)" --results-dir $(RESULTS_DIR) --ship \
	  $(if $(wildcard $(EMODB_DIR)),--ood-corpus EMODB=$(EMODB_DIR))
	$(VENV)/bin/ser-tf report --paper timnet --results $(RESULTS_DIR) \
	  --readme ser_tf/papers/timnet/README.md

# CNN family (issue 29) on RAVDESS alone (7 classes, calm merged into neutral): the report's
# six configurations under its random stratified 80/10/10 split (model:input:awgn copies),
# and the two that give every model a run with and without AWGN; the two of the six with the
# lowest validation loss speaker-independent (5 folds; python -m
# ser_tf.papers.cnn_family.speaker_choice, or CNN_FAMILY_SPEAKER_RUNS=... to name them);
# the single CNN once more with BatchNorm over channels (--bn-axis channels, the corrected
# layer; the report's count needs it over time); every fold scored clean and under white noise
# at 20, 10 and 0 dB, then one Hyperband search of the single CNN's learning rate over
# {1e-5, 1e-4, 1e-3, 1e-2}. CORPORA=DIR (a folder with ravdess/ savee/ tess/ cremad/) runs
# the same on the four-corpus union, the report's own data. Every run resumes.
# RAVDESS: ../shared/data/ravdess unless RAVDESS_DIR is given (command line or environment).
CNN_FAMILY_RAVDESS_DIR ?= $(if $(filter command line environment,$(origin RAVDESS_DIR)),$(RAVDESS_DIR),../shared/data/ravdess)
CNN_FAMILY_RUNS ?= cnn:mfcc:0 2cnn:mfcc:2 2cnn_transformer:mfcc:0 2cnn_transformer:mfcc:2 2cnn_transformer:mel:0 2cnn_transformer:mel:2 cnn:mfcc:2 2cnn:mfcc:0
CNN_FAMILY_SPEAKER_RUNS ?=
CORPORA ?=
.PHONY: reproduce-cnn-family
reproduce-cnn-family: install
	@[ -d "$(CNN_FAMILY_RAVDESS_DIR)" ] || $(VENV)/bin/ser-tf data download ravdess \
	  --dest "$$(dirname "$(CNN_FAMILY_RAVDESS_DIR)")" || exit 1
	@for data in RAVDESS $(if $(CORPORA),RAVDESS+SAVEE+TESS+CREMAD); do \
	  case $$data in RAVDESS) where="--data-dir-ravdess $(CNN_FAMILY_RAVDESS_DIR)";; \
	    *) where="--data-root $(CORPORA)";; esac; \
	  corpus=$$(echo $$data | tr + -); speaker_runs="$(CNN_FAMILY_SPEAKER_RUNS)"; \
	  for run in $(addprefix paper:,$(CNN_FAMILY_RUNS)); do \
	    set -- $$(echo $$run | tr : ' '); \
	    echo "== CNN family $$data, protocol $$1, model $$2, input $$3, awgn $$4"; \
	    $(PY) -m ser_tf.experiments.cnn_family --dataset $$data $$where --protocol $$1 \
	      --folds 5 --model $$2 --input $$3 --awgn $$4 --noise-eval 20,10,0 \
	      --results-dir $(RESULTS_DIR) || exit 1; \
	  done; \
	  echo "== CNN family $$data: the single CNN with BatchNorm over channels (the corrected layer)"; \
	  $(PY) -m ser_tf.experiments.cnn_family --dataset $$data $$where --protocol paper \
	    --folds 5 --model cnn --input mfcc --awgn 0 --bn-axis channels --noise-eval 20,10,0 \
	    --results-dir $(RESULTS_DIR) || exit 1; \
	  [ -n "$$speaker_runs" ] || speaker_runs=$$($(PY) -m ser_tf.papers.cnn_family.speaker_choice \
	    --results $(RESULTS_DIR) --corpus $$corpus \
	    --out $(RESULTS_DIR)/cnn_family/$$corpus/speaker-choice.json) || exit 1; \
	  for run in $$speaker_runs; do \
	    set -- $$(echo $$run | tr : ' '); \
	    echo "== CNN family $$data, protocol speaker, model $$1, input $$2, awgn $$3"; \
	    $(PY) -m ser_tf.experiments.cnn_family --dataset $$data $$where --protocol speaker \
	      --folds 5 --model $$1 --input $$2 --awgn $$3 --noise-eval 20,10,0 \
	      --results-dir $(RESULTS_DIR) || exit 1; \
	  done; \
	  echo "== CNN family $$data: Hyperband over the single CNN's learning rate"; \
	  $(PY) -m ser_tf.experiments.cnn_family --dataset $$data $$where --protocol paper \
	    --model cnn --input mfcc --awgn 0 --tune --tuner hyperband \
	    --results-dir $(RESULTS_DIR) || exit 1; \
	done
	$(VENV)/bin/ser-tf report --paper cnn_family --results $(RESULTS_DIR) \
	  --readme ser_tf/papers/cnn_family/README.md
	$(NOISE_REPORT)

# Attention FCN (issue 28): the 1-D variant on RAVDESS 4-class under its own protocol (power
# input as the student had it, and the dB input chosen on validation: clean runs of both),
# speaker-independent with λ in {0.3, 0.8, 1.0} (each choice written by
# python -m ser_tf.reporting.validation_choice into experiments/results/attention_fcn/), the
# 2-D λ ablation on EMO-DB chosen the same way, and the 2-D model speaker-independent on
# EMO-DB and RAVDESS 4-class; the EMO-DB run's per-class attention figure and its shipped
# explain model (the median-UA fold's TFLite, α as second output). Every run resumes.
AFCN_RAVDESS_DIR ?= $(if $(filter command line environment,$(origin RAVDESS_DIR)),$(RAVDESS_DIR),../shared/data/ravdess)
AFCN_EMODB_DIR ?= $(if $(filter command line environment,$(origin EMODB_DIR)),$(EMODB_DIR),../shared/data/emodb)
AFCN := $(PY) -m ser_tf.experiments.attention_fcn --results-dir $(RESULTS_DIR)
.PHONY: reproduce-attention-fcn
reproduce-attention-fcn: install
	$(AFCN) --variant 1d --dataset RAVDESS --data-dir $(AFCN_RAVDESS_DIR) --protocol paper
	@choices=""; for scale in power db; do $(AFCN) --variant 1d --dataset RAVDESS --data-dir \
	  $(AFCN_RAVDESS_DIR) --protocol clean --input-scale $$scale --no-export || exit 1; \
	  run=$$($(AFCN) --variant 1d --dataset RAVDESS --data-dir $(AFCN_RAVDESS_DIR) --protocol \
	    clean --input-scale $$scale --no-export --print-run-dir) || exit 1; \
	  choices="$$choices $$scale=$${run%.work}"; done; \
	echo "== Attention FCN: input scale chosen on validation UA ($$choices)"; \
	$(PY) -m ser_tf.reporting.validation_choice $$choices \
	  --out $(RESULTS_DIR)/attention_fcn/RAVDESS/choice-input-scale-clean.json || exit 1
	$(AFCN) --variant 1d --dataset RAVDESS --data-dir $(AFCN_RAVDESS_DIR) --protocol paper --input-scale db
	@choices=""; for lam in 0.3 0.8 1.0; do $(AFCN) --variant 1d --dataset RAVDESS --data-dir \
	  $(AFCN_RAVDESS_DIR) --protocol speaker --input-scale db --lam $$lam --no-export || exit 1; \
	  run=$$($(AFCN) --variant 1d --dataset RAVDESS --data-dir $(AFCN_RAVDESS_DIR) --protocol \
	    speaker --input-scale db --lam $$lam --no-export --print-run-dir) || exit 1; \
	  choices="$$choices lam=$$lam=$${run%.work}"; done; \
	echo "== Attention FCN: 1-D λ chosen on validation UA of speaker folds"; \
	$(PY) -m ser_tf.reporting.validation_choice $$choices \
	  --out $(RESULTS_DIR)/attention_fcn/RAVDESS/choice-lambda-1d-speaker.json || exit 1
	$(AFCN) --variant 2d --dataset EMODB --data-dir $(AFCN_EMODB_DIR) --protocol speaker
	@run=$$($(AFCN) --variant 2d --dataset EMODB --data-dir $(AFCN_EMODB_DIR) --protocol speaker \
	  --print-run-dir) || exit 1; \
	echo "== Attention FCN: per-class attention figure and shipped explain model from $$run"; \
	$(PY) -m ser_tf.papers.attention_fcn.figures --run-dir $$run --data-dir $(AFCN_EMODB_DIR) \
	  --out docs/figures/attention_fcn-emodb-per-class.png || exit 1; \
	$(PY) -m ser_tf.papers.attention_fcn.ship --run-dir $$run || exit 1
	@choices="lam=0.3=$$($(AFCN) --variant 2d --dataset EMODB --data-dir $(AFCN_EMODB_DIR) \
	  --protocol speaker --print-run-dir)" || exit 1; choices="$${choices%.work}"; \
	for lam in 0.8 1.0; do $(AFCN) --variant 2d --dataset EMODB --data-dir \
	  $(AFCN_EMODB_DIR) --protocol speaker --lam $$lam || exit 1; \
	  run=$$($(AFCN) --variant 2d --dataset EMODB --data-dir $(AFCN_EMODB_DIR) --protocol \
	    speaker --lam $$lam --print-run-dir) || exit 1; \
	  choices="$$choices lam=$$lam=$${run%.work}"; done; \
	echo "== Attention FCN: 2-D λ chosen on validation UA of speaker folds"; \
	$(PY) -m ser_tf.reporting.validation_choice $$choices \
	  --out $(RESULTS_DIR)/attention_fcn/EMODB/choice-lambda-2d-speaker.json || exit 1
	$(AFCN) --variant 2d --dataset RAVDESS --data-dir $(AFCN_RAVDESS_DIR) --protocol speaker
	$(VENV)/bin/ser-tf report --paper attention_fcn --results $(RESULTS_DIR) \
	  --readme ser_tf/papers/attention_fcn/README.md

# Semantic SER (issue 30): the EMO-DB proxy (categories mapped to arousal/valence, speaker
# folds), audio-only and fusion; SEWA_DIR=... adds the paper's own setting (Train -> Devel)
# for the three variants. Every run resumes.
SEMANTIC_EMODB_DIR ?= $(if $(filter command line environment,$(origin EMODB_DIR)),$(EMODB_DIR),../shared/data/emodb)
SEMANTIC := $(PY) -m ser_tf.experiments.semantic --results-dir $(RESULTS_DIR)
# The proxy's utterances (1.2-9 s) train in 3 s chunks: with the paper's 10 s chunks 72 % of
# the frames the network convolves are padding (README, "The EMO-DB / RAVDESS proxy").
SEMANTIC_PROXY_CHUNK ?= 30
.PHONY: reproduce-semantic
reproduce-semantic: install
	@for variant in audio fusion; do $(SEMANTIC) --dataset EMODB --data-dir \
	  $(SEMANTIC_EMODB_DIR) --variant $$variant --chunk-frames $(SEMANTIC_PROXY_CHUNK) \
	  || exit 1; done
	@if [ -n "$(SEWA_DIR)" ]; then for variant in audio text fusion; do $(SEMANTIC) \
	  --dataset SEWA --data-dir $(SEWA_DIR) --variant $$variant || exit 1; done; fi
	$(VENV)/bin/ser-tf report --paper semantic --results $(RESULTS_DIR) \
	  --readme ser_tf/papers/semantic/README.md

# The tables every paper's README holds between <!-- report:... --> (and the CNN family's
# <!-- noise:... -->) markers, rewritten from the run records under RESULTS_DIR, or checked
# against them (exit 1 with the difference; tests/test_readme_blocks.py does the same for
# the committed records).
REPORT_PAPERS := lightsernet timnet attention_fcn cnn_family semantic
NOISE_REPORT := $(PY) -m ser_tf.papers.cnn_family.noise_report --results $(RESULTS_DIR) \
  --readme ser_tf/papers/cnn_family/README.md
.PHONY: readmes check-readmes
readmes: install
	@for p in $(REPORT_PAPERS); do $(VENV)/bin/ser-tf report --paper $$p \
	  --results $(RESULTS_DIR) --readme ser_tf/papers/$$p/README.md > /dev/null || exit 1; \
	  done
	@$(NOISE_REPORT)

check-readmes: install
	@status=0; for p in $(REPORT_PAPERS); do $(VENV)/bin/ser-tf report --paper $$p \
	  --results $(RESULTS_DIR) --readme ser_tf/papers/$$p/README.md --check || status=1; \
	done; $(NOISE_REPORT) --check || status=1; exit $$status

clean-venv:
	rm -rf $(VENV)

# Light-SERNet speed on EMO-DB (3 s MFCC, batch 32): s/epoch with and without XLA, feature
# throughput, TFLite latency per variant, input pipeline vs. train step. Minutes; run it on
# an idle machine. Record: experiments/results/bench/lightsernet-emodb-<date>.json.
# Out-of-domain detectors (docs/deployment.md): each shipped EMO-DB model through the device
# runtime on every EMO-DB and RAVDESS recording, leave-one-speaker-out false alarms against
# detection on RAVDESS. ~10 min per model. Records: experiments/results/bench/ood-detectors-*.json.
OOD_RUNS ?= timnet:speaker-1d28747f33 lightsernet:speaker-66bf0b9cbe
.PHONY: bench-ood
bench-ood: install
	@for run in $(OOD_RUNS); do paper=$${run%%:*}; id=$${run##*:}; \
	  $(PY) -m ser_tf.bench.ood --model tflite_models/$$paper-emodb-mfcc-float32.tflite \
	    --corpus EMODB="$(EMODB_DIR)" --other RAVDESS="$(RAVDESS_DIR)" \
	    --run-dir $(RESULTS_DIR)/$$paper/EMODB/$$id.work \
	    --results-dir $(RESULTS_DIR) --out bench/ood-detectors-$$paper-emodb.json || exit 1; done

.PHONY: bench-lightsernet
bench-lightsernet: install
	$(PY) -m ser_tf.bench.lightsernet --results-dir $(RESULTS_DIR) \
	  $(if $(wildcard $(EMODB_DIR)),--data-dir "$(EMODB_DIR)")

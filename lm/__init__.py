"""xLSTM and GPT-2 language models.

The modules::

    gpt2         GPT2Config, GPT2: nanoGPT-style baseline (learned positions, SDPA, tied embeddings)
    xlstm_lm     xLSTMLMConfig, xLSTMLM: embedding -> xLSTMStack -> norm -> tied head; chunked and step-wise
    lstm_lm      LSTMLMConfig, LSTMLM: the nn.LSTM baseline with a tied head; chunked and step-wise
    models       LMModelConfig, build_model, survey sizes, parameter counts, FLOPs per token (MFU)
    tokenizer    gpt2_tokenizer(): GPT-2 BPE through tiktoken, offline from the data root
    corpora      Wikipedia / Gutenberg / FineWeb-Edu documents
    shards       PrepareConfig, prepare, TokenShards: uint16 token shards, resumable (`xlstm-seq lm prepare`)
    loader       TokenBatches: (B, T) windows with a JSON-serialisable position, rank-aware
    trainer      TrainConfig, Trainer: AdamW, warmup + cosine, bf16, DDP, safetensors checkpoints (`lm train`)
    evaluation   sliding-window perplexity, LAMBADA, HellaSwag, frequency buckets (scoring functions)
    eval_data    the evaluation sets from the data root
    eval_suite   EvalSettings, EvalConfig, run_suite, run_eval (`xlstm-seq lm eval`)

The comparison of the two (`xlstm-seq lm benchmark`) and the synthetic-task benchmark (`xlstm-seq synthetic ...`)
belong to the benchmark suite (xlstm_seq_bench.lm, xlstm_seq_bench.synthetic), not to this package.
"""

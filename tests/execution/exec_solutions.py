"""Hand-written completions for three MultiPL-E problems in every language: (correct, wrong) per problem,
plus one syntax error per language. Completions are what a model would emit after the prompt, without the
stop token (so C++/bash bodies stop before the closing brace, which the tests supply)."""

PROBLEMS = ("HumanEval_53_add", "HumanEval_13_greatest_common_divisor", "HumanEval_55_fib")

SOLUTIONS: dict[str, dict[str, tuple[str, str]]] = {
    "py": {
        "HumanEval_53_add": ("    return x + y\n", "    return x - y\n"),
        "HumanEval_13_greatest_common_divisor": (
            "    while b:\n        a, b = b, a % b\n    return a\n", "    return 1\n"),
        "HumanEval_55_fib": (
            "    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n",
            "    return n\n"),
    },
    "cpp": {
        "HumanEval_53_add": ("    return x + y;\n", "    return x * y;\n"),
        "HumanEval_13_greatest_common_divisor": (
            "    while (b) { long t = a % b; a = b; b = t; }\n    return a;\n", "    return a;\n"),
        "HumanEval_55_fib": (
            "    long a = 0, b = 1;\n    for (long i = 0; i < n; i++) { long t = a + b; a = b; b = t; }\n"
            "    return a;\n", "    return n;\n"),
    },
    "java": {
        "HumanEval_53_add": ("        return x + y;\n", "        return x - y;\n"),
        "HumanEval_13_greatest_common_divisor": (
            "        while (b != 0) { long t = a % b; a = b; b = t; }\n        return a;\n", "        return b;\n"),
        "HumanEval_55_fib": (
            "        long a = 0, b = 1;\n        for (long i = 0; i < n; i++) { long t = a + b; a = b; b = t; }\n"
            "        return a;\n", "        return n + 1;\n"),
    },
    "php": {
        "HumanEval_53_add": ("    return $x + $y;\n}\n", "    return $x * $y;\n}\n"),
        "HumanEval_13_greatest_common_divisor": (
            "    while ($b != 0) { $t = $a % $b; $a = $b; $b = $t; }\n    return $a;\n}\n", "    return 1;\n}\n"),
        "HumanEval_55_fib": (
            "    $a = 0; $b = 1;\n    for ($i = 0; $i < $n; $i++) { $t = $a + $b; $a = $b; $b = $t; }\n"
            "    return $a;\n}\n", "    return $n;\n}\n"),
    },
    "ts": {
        "HumanEval_53_add": ("    return x + y;\n}\n", "    return x * y;\n}\n"),
        "HumanEval_13_greatest_common_divisor": (
            "    while (b !== 0) { const t = a % b; a = b; b = t; }\n    return a;\n}\n", "    return 1;\n}\n"),
        "HumanEval_55_fib": (
            "    let a = 0, b = 1;\n    for (let i = 0; i < n; i++) { const t = a + b; a = b; b = t; }\n"
            "    return a;\n}\n", "    return n;\n}\n"),
    },
    "sh": {
        "HumanEval_53_add": ("    echo $(( $1 + $2 ))\n", "    echo $(( $1 * $2 ))\n"),
        "HumanEval_13_greatest_common_divisor": (
            "    local a=$1 b=$2\n    while [ $b -ne 0 ]; do local t=$((a % b)); a=$b; b=$t; done\n    echo $a\n",
            "    echo 1\n"),
        "HumanEval_55_fib": (
            "    local a=0 b=1\n    for ((i=0; i<$1; i++)); do local t=$((a + b)); a=$b; b=$t; done\n    echo $a\n",
            "    echo $1\n"),
    },
}

SOLUTIONS["cs"] = SOLUTIONS["java"]  # method bodies only: the same text is valid C#
SOLUTIONS["js"] = SOLUTIONS["ts"]  # these TypeScript bodies carry no type annotations

# A completion that does not parse, for HumanEval_53_add. Bash skips some malformed commands and carries on
# (a broken `[[ ... ]]` exits 0: see langs/sh.py), so its syntax error is a stray `fi`, which aborts the file.
SYNTAX_ERRORS: dict[str, str] = {
    "py": "    return x +\n",
    "cpp": "    return x + ;\n",
    "java": "        return x + ;\n",
    "cs": "        return x + ;\n",
    "php": "    return $x + ;\n}\n",
    "ts": "    return x + ;\n}\n",
    "js": "    return x + ;\n}\n",
    "sh": "    fi\n",
}

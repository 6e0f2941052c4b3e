"""The claims' LALR grammar (Lark) and what each terminal looks like in an error message.

Contract: :data:`GRAMMAR` is the grammar of :mod:`symbp.claims` (its precedence is in the
package docstring); :data:`TERMINAL_TEXT` names each terminal for "expected ..." in a
:class:`~symbp.claims.nodes.ClaimParseError`, in the order they are listed.
"""

GRAMMAR = r"""
start: expr (_EQ expr)+

?expr: sum
?sum: product
    | sum _PLUS product              -> add
    | sum _MINUS product             -> sub
    | _MINUS product                 -> neg
    | _PLUS product
?product: hterm
    | product _ODOT hterm            -> hadamard
    | product _STAR hterm            -> star
?hterm: cterm
    | sumop hterm                    -> sumover
    | cterm sumop hterm              -> matmul_sum
?cterm: mterm
    | cterm _CORR stride? mterm      -> correlate
?mterm: unary
    | mterm _CDOT unary              -> matmul
    | mterm unary                    -> matmul
    | mterm _SLASH unary             -> div
    | mterm _BMOD unary              -> mod
?unary: postfix
    | dop unary                      -> derivative
?postfix: atom
    | postfix _SUP sup               -> superscript
    | postfix _SUB index             -> subscript
    | postfix PRIME                  -> prime
?atom: group
    | NUMBER                         -> number
    | leaf
    | wrapped
    | fn_app
    | fn_bare
    | frac
    | gradient
    | euler
    | cases
    | maximum
    | indicator
    | iverson
    | conv_fn
    | ILET                           -> iletter
    | _LFLOOR expr _RFLOOR           -> floor
group: LPAR expr RPAR
     | _LBRACE expr _RBRACE
leaf: LEAF
    | HAT
    | BATCHSTAT
    | SIGMAQ
    | WIDTH
    | TILDE
wrapped: WRAP _LBRACE (LEAF | NUMBER | HAT | SIGMAQ) _RBRACE
cases: _BEGIN_CASES case_row (_ROWSEP case_row)* _ROWSEP? _END_CASES
case_row: expr (_CASE_AMP condition?)?
condition: CASEWORD? compare
         | CASEWORD                  -> otherwise
         | CASEWORD? prose           -> prose
prose: ((ILET | LEAF)? PROSE)+
compare: sum CMP sum
between: sum CMP sum CMP sum
member: sum _IN LPAR sum _COMMA _DOTS _COMMA sum RPAR
equality: sum _EQ sum
?bracket_cond: compare
    | equality
    | between
    | member
iverson: LPAR bracket_cond RPAR
maximum: _MAX LPAR expr _COMMA expr RPAR
indicator: INDICATOR LPAR bracket_cond RPAR
         | INDICATOR _SUB _LBRACE bracket_cond _RBRACE
euler: _EULER _SUP (_LBRACE expr _RBRACE | DIGIT | LEAF)
frac: _FRAC _LBRACE expr _RBRACE _LBRACE expr _RBRACE
    | _FRAC DIGIT DIGIT              -> frac_digits
dop: _FRAC _LBRACE _DIFF _RBRACE _LBRACE _DIFF LEAF _RBRACE
gradient: _FRAC _LBRACE _DIFF loss _RBRACE _LBRACE _DIFF braced_target _RBRACE   -> grad
        | _DIFF loss _SLASH _DIFF target                                    -> grad
        | _NABLA _SUB _LBRACE braced_target _RBRACE loss loss_args?         -> nabla
        | _NABLA _SUB (LEAF | HAT) loss loss_args?                          -> nabla_short
        | _FRAC _LBRACE _DIFF _RBRACE _LBRACE _DIFF target _RBRACE loss loss_args? -> grad_of
        | _FRAC _LBRACE _DIFF fname _RBRACE _LBRACE _DIFF LEAF _RBRACE      -> dfunc
        | NGD target                                                        -> ng_grad
target: (leaf | wrapped) (_SUP sup | _SUB index)*
?braced_target: target
      | fname group (_SUB index)?    -> fn_target
      | GENF (_SUB index)?           -> f_target
loss: (BIGL | LOSSNAME) (_SUB index)?
loss_args: LOSSARGS
fn_app: fname fn_mod* fn_arg
fn_bare: LPAR fname fn_mod* RPAR PRIME
fname: FUNC | TEXTNAME | GENF | ROT180
conv_fn: CONVOP _SUB params fn_arg
stride: _SUB params
params: _LBRACE iexpr _RBRACE
      | _LBRACE LPAR iexpr (_COMMA iexpr)+ RPAR _RBRACE
      | IDX
      | DIGIT
fn_mod: PRIME                        -> mod_prime
      | _SUB sub                     -> mod_sub
      | _SUP sup                     -> mod_sup
fn_arg: group
      | fn_app                       -> fn_arg_nested
      | (leaf | wrapped) (_SUP sup | _SUB index)* -> fn_arg_bare
sub: _LBRACE layer _RBRACE
   | layer_var
   | DIGIT
index: _LBRACE iexpr (_COMMA iexpr)* _RBRACE
     | IDX                           -> index_one
     | DIGIT                         -> index_one
     | ELL                           -> index_one
?iexpr: iterm
    | iexpr _PLUS iterm              -> add
    | iexpr _MINUS iterm             -> sub
    | _MINUS iterm                   -> neg
?iterm: ifactor
    | iterm ifactor                  -> matmul
    | iterm _CDOT ifactor            -> times
    | iterm _SLASH ifactor           -> div
    | iterm _BMOD ifactor            -> mod
?ifactor: INT                        -> number
    | IDX PRIME* (_SUB bound_sub)?   -> iletter
    | ELL                            -> iletter
    | WIDTH                          -> leaf
    | LPAR iexpr RPAR                -> group
    | _LFLOOR iexpr _RFLOOR          -> floor
    | _FRAC _LBRACE iexpr _RBRACE _LBRACE iexpr _RBRACE -> frac
sumop: _SUM (_SUB sum_range)? (_SUP sum_upper)?
sum_range: IDX
         | ELL
         | _LBRACE (IDX | ELL) PRIME* (_EQ INT)? _RBRACE
         | _LBRACE (IDX | ELL) _IN IDX _RBRACE  -> sum_set
         | _LBRACE IDX PRIME* (_COMMA IDX PRIME*)+ _RBRACE -> sum_many
sum_upper: _LBRACE iexpr _RBRACE
         | IDX                       -> iletter
         | DIGIT                     -> number
bound_sub: IDX
         | _LBRACE IDX ((_PLUS | _MINUS) INT)? _RBRACE
sup: _LBRACE sup_item+ _RBRACE
   | TRANSPOSE                       -> sup_t
   | DIGIT                           -> sup_pow
   | layer_var                       -> sup_layer
   | PRIME_CMD                       -> sup_prime
sup_item: LPAR layer RPAR            -> sup_layer
        | LPAR EXAMPLE RPAR          -> sup_example
        | layer_var_expr             -> sup_layer
        | TRANSPOSE                  -> sup_t
        | INT                        -> sup_pow
        | _MINUS INT                 -> sup_negpow
        | _MINUS? INT _SLASH INT     -> sup_halfpow
        | PRIME_CMD                  -> sup_prime
        | PRIME                      -> sup_prime
layer: layer_var_expr
     | INT                           -> layer_int
layer_var_expr: layer_var
     | layer_var _PLUS INT           -> layer_plus
     | layer_var _MINUS INT          -> layer_minus
layer_var: SMALLL | BIGL | SMALLK | OUTLAYER | ELL

_EQ: "="
_PLUS: "+"
_MINUS: "-"
_SLASH: "/"
_SUP: "^"
_SUB: "_"
_COMMA: ","
LOSSARGS.5: /\((?=[^()]*[,;])[^()]*\)/
ELL: /\\ell(?![a-zA-Z])/
PRIME: "'"
_LBRACE: "{"
_RBRACE: "}"
LPAR: /\\left\s*([(\[]|\\\{)|\\[bB]igg?l?\s*([(\[]|\\\{)|[(\[]|\\\{/
RPAR: /\\right\s*([)\]]|\\\})|\\[bB]igg?r?\s*([)\]]|\\\})|[)\]]|\\\}/
_ODOT: /\\(odot|circ|bullet)(?![a-zA-Z])/
_STAR: "*"
_CDOT: /\\(cdot|times)(?![a-zA-Z])/
_FRAC: /\\[dt]?frac(?![a-zA-Z])/
_SUM: /\\sum(?![a-zA-Z])(\s*\\limits(?![a-zA-Z]))?/
_DIFF.3: /\\partial(?![a-zA-Z])|\\mathrm\s*\{\s*d\s*\}|d/
NGD.4: /d(?=\s*(\\mathbf\s*\{\s*)?[WbzaZAxX](?![a-zA-Z]))/
_NABLA: /\\nabla(?![a-zA-Z])/
_BEGIN_CASES: /\\begin\s*\{\s*cases\s*\}/
_END_CASES: /\\end\s*\{\s*cases\s*\}/
_ROWSEP: "\\\\"
_CASE_AMP: "\x01"
CASEWORD.4: /\\(text|mathrm|textrm|mbox)\s*\{\s*(for|if|when|otherwise|else)\s*\}/
CMP: />=?|<=?|\\(geq?|leq?|gt|lt|geqslant|leqslant)(?![a-zA-Z])/
_IN: /\\in(?![a-zA-Z])/
_DOTS: /\\[lc]?dots(?![a-zA-Z])|\.\.\./
_LFLOOR: /(\\left\s*)?\\lfloor(?![a-zA-Z])/
_RFLOOR: /(\\right\s*)?\\rfloor(?![a-zA-Z])/
_BMOD.3: /\\bmod(?![a-zA-Z])|\\operatorname\s*\{\s*mod\s*\}/
_CORR: /\\star(?![a-zA-Z])/
CONVOP.3: /\\(operatorname|mathrm)\s*\{\s*(pad|dil)\s*\}/
ROT180.3: /\\(operatorname|mathrm)\s*\{\s*rot\s*\}\s*_\s*\{\s*180\s*(\^\s*(\{\s*\\circ\s*\}|\\circ)|°)\s*\}/
BATCHSTAT.5: /\\(mu|sigma)\s*(\^\s*(2|\{\s*2\s*\})\s*)?_\s*(\{\s*\\mathcal\s*\{\s*B\s*\}\s*\}|\\mathcal\s*\{\s*B\s*\})/
PROSE.3: /\\(text|mathrm|textrm|mbox)\s*\{[^{}]*[^{}A-Za-z0-9_\\][^{}]*\}/
TILDE: /\\(widetilde|tilde)\s*\{\s*\\(delta|Delta)\s*\}/
// an index letter where a quantity may also stand (an Iverson bracket's operands): the
// letters that no quantity, function, d or e takes; the builder refuses it outside indices
ILET: /[cijklqsuvCDEFGIJKLOPQRSTUV]/
_MAX: /\\max(?![a-zA-Z])/
INDICATOR.6: /\\(mathbb|mathbf|bm)\s*\{\s*1\s*\}(?=\s*(\[|\\left\s*\[|_|\())/
LEAF: /\\(delta|Delta|chi|mu|epsilon|varepsilon|gamma|beta|lambda|pi)(?![a-zA-Z])|[WbzaxyAZXYBwhotgmNHMrpn]/
HAT: /\\hat\s*(\{\s*[yYxX]\s*\}|[yYxX])/
SIGMAQ.5: /\\sigma(?=\s*\^\s*\{?\s*(2\s*)?\()/
WIDTH.2: /n_\s*(\{\s*[lL]\s*([+-]\s*\d)?\s*\}|\{\s*\d\s*\}|[lL\d])/
WRAP: /\\(mathbf|boldsymbol|bm|vec|mathbb|bf)(?![a-zA-Z])/
FUNC: /\\(sigma|Sigma|Phi|tanh|exp|log|ln|sqrt|cosh|sinh|sech|sin|cos)(?![a-zA-Z])/
TEXTNAME.2: /\\(operatorname|mathrm|text|textrm|mathit|mathsf|rm)\s*\{\s*[A-Za-z](\\?_|[A-Za-z0-9])*\s*\}/
GENF: /f|\\phi(?![a-zA-Z])|\\varphi(?![a-zA-Z])/
_EULER: "e"
TRANSPOSE.3: /T|\\top(?![a-zA-Z])|\\intercal(?![a-zA-Z])|\\(mathsf|mathrm|mathtt|text)\s*\{\s*T\s*\}/
PRIME_CMD: /\\prime(?![a-zA-Z])/
BIGL: "L"
SMALLL: "l"
SMALLK: "k"
OUTLAYER: /n_\s*(\{\s*l\s*\}|l)/
EXAMPLE: /[ijnrst](?![a-zA-Z])/
LOSSNAME: /\\ell(?![a-zA-Z])|\\mathcal\s*\{\s*L\s*\}|[CEJ]/
IDX: /[a-zA-Z]/
NUMBER: /\d+(\.\d+)?|\.\d+/
INT: /\d+/
DIGIT: /\d/

%ignore /\s+/
%ignore /\\[,;:! ]|\\q?quad(?![a-zA-Z])|~|&|\\displaystyle(?![a-zA-Z])/
"""

# What each terminal looks like, for "expected ..." in error messages.
TERMINAL_TEXT = {
    "_EQ": "'='", "_PLUS": "'+'", "_MINUS": "'-'", "_SLASH": "'/'", "_SUP": "'^'",
    "_SUB": "'_'", "PRIME": "\"'\"", "_LBRACE": "'{'", "_RBRACE": "'}'",
    "LPAR": "'('", "RPAR": "')'", "_ODOT": "'\\odot'", "_STAR": "'*'", "_CDOT": "'\\cdot'",
    "_FRAC": "'\\frac'", "_DIFF": "'\\partial' or 'd'", "_NABLA": "'\\nabla'",
    "LEAF": "a quantity (W, b, z, a, x, y, \\delta)", "WRAP": "'\\mathbf'",
    "FUNC": "a function (\\sigma, \\tanh, \\exp, \\log)",
    "TEXTNAME": "'\\operatorname{...}'", "GENF": "'f'", "_EULER": "'e'",
    "TRANSPOSE": "'T' or '\\top'", "PRIME_CMD": "'\\prime'", "BIGL": "'L'",
    "SMALLL": "'l'", "LOSSNAME": "a loss (L, \\ell, C, E)", "NUMBER": "a number",
    "INT": "an integer", "DIGIT": "a digit", "$END": "the end of the claim",
    "_SUM": "'\\sum'", "NGD": "'dW', 'dz' (Ng's gradients)", "HAT": "'\\hat{y}'",
    "_BEGIN_CASES": "'\\\\begin{cases}'", "_END_CASES": "'\\\\end{cases}'",
    "_ROWSEP": "'\\\\\\\\'", "_CASE_AMP": "'&'", "CASEWORD": "'\\\\text{if}'",
    "CMP": "a comparison (>, <, \\\\geq, \\\\leq)", "_MAX": "'\\\\max'",
    "INDICATOR": "'\\\\mathbb{1}'",
    "EXAMPLE": "an example (i)", "SMALLK": "'k'", "OUTLAYER": "'n_l'", "ELL": "'\\\\ell'", "LOSSARGS": "'(W, b)'", "SIGMAQ": "'\\\\sigma^{(l)}'", "WIDTH": "'n_l'", "IDX": "an index letter (i, j, k)", "_COMMA": "','",
    "ILET": "an index letter (i, j, k)", "_IN": "'\\in'", "_DOTS": "'\\dots'",
    "_LFLOOR": "'\\lfloor'", "_RFLOOR": "'\\rfloor'", "_BMOD": "'\\bmod'",
    "_CORR": "'\\star'", "CONVOP": "'\\operatorname{pad}'",
    "ROT180": "'\\operatorname{rot}_{180^{\\circ}}'", "TILDE": "'\\widetilde{\\delta}'",
    "BATCHSTAT": "'\\mu_\\mathcal{B}'", "PROSE": "'\\text{...}'",
}
EXPECTED_ORDER = list(TERMINAL_TEXT)

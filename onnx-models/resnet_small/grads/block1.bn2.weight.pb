Bblock1.bn2.weightJ€ByÁæq¿~7tûftk¿–_#æTª?r~î.+§?i»k‚úa¿ãP“ªˆjG¿©í1|P“j¿1Ì…GqF¤¿´Sn
ŸAg¿kª¯O”¿„Àq¬j‰R?ŸËÀ¥Óõe¿æ¥Fè®p¿ñã_à²€¿È)ç£c?—È-“?
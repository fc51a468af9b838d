package wire

// Outcome strings, exactly as the reference spells them: clients compare
// them, or their first eight characters, verbatim.
const (
	OK0000 = "OK 0000 Acknowledged"
	OK0001 = "OK 0001 Subject anonymous certificate valid"
	OK0002 = "OK 0002 Subject anonymous certificate valid and user uid associated"
	OK0100 = "OK 0100 Subject user successfully associated to Identity Plus identity"
	OK0101 = "OK 0101 Subject user disassociated"
	OK0102 = "OK 0102 Subject user updated"

	PB0000 = "PB 0000 No Identity Plus anonymous certificate"
	PB0002 = "PB 0002 Expired Identity Plus anonymous certificate"
	PB0003 = "PB 0003 Identity Plus anonymous certificate needs validation"
	PB0004 = "PB 0004 Revoked Identity Plus anonymous certificate"
	PB0005 = "PB 0005 Intruder Certificate"
	PB0006 = "PB 0006 Unknown Identity Plus anonymous certificate"
	PB0008 = "PB 0008 Authorization Expired"

	ER0000 = "ER 0000 Undetermined error"
	ER0001 = "ER 0001 Unknown request error"
	ER0002 = "ER 0002 No such operation for object"
	ER0003 = "ER 0003 Subject user name is already associated"
	ER0004 = "ER 0004 Subject user name is already associated to a different identity"
	ER0005 = "ER 0005 Subject user name was never associated"
	ER0006 = "ER 0006 Return URL is too long"
	ER0007 = "ER 0007 An intrusion was already reported on this certificate"
	ER0008 = "ER 0008 Error Parsing Request"
	ER0009 = "ER 0009 Request Denied"
	ER0010 = "ER 0010 Insufficient Reference Information"
	ER0011 = "ER 0011 Incomplete Message Error"
	ER0012 = "ER 0012 Expecting Service Agent"

	ER1100 = "ER 1100 No Identity Plus API certificate presented"
	ER1101 = "ER 1101 Unknown Identity Plus API certificate"
	ER1102 = "ER 1102 Expired Identity Plus API certificate"
	ER1103 = "ER 1103 Revoked Identity Plus API certificate"
	ER1104 = "ER 1104 Number of connectable identities exceeded"
	ER1105 = "ER 1105 Suspended Identity Plus API certificate"
	ER1106 = "ER 1106 General Identity Plus API Problem"
)

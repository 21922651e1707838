/*
 * Status values of the EAS commands, by name.
 *
 * Sources (facts only, meanings written in our own words for administrators):
 *   [MS-ASCMD] 2.2.2      Common Status Codes 101-184 (every command)
 *   [MS-ASCMD] 2.2.3.177  Status per command: .1 Autodiscover, .2 Find, .3 FolderCreate,
 *                         .4 FolderDelete, .5 FolderSync, .6 FolderUpdate, .7 GetItemEstimate,
 *                         .8 ItemOperations, .9 MeetingResponse, .10 MoveItems, .11 Ping,
 *                         .12 ResolveRecipients, .13 Search, .14 SendMail, .15 Settings,
 *                         .16 SmartForward/SmartReply, .17 Sync, .18 ValidateCert
 *   [MS-ASPROV] 2.2.2.54  Provision Status (root), .54.1 Policy, RemoteWipe
 *   [MS-ASHTTP] 2.2.2.1.1 HTTP status codes; 3.1.5.2 client handling
 *
 * Lookup: the tables of a command are tried in order; a table with a parent name only
 * matches a Status inside that element, a table without one matches any parent. When no
 * command table knows the value, the Common table answers (101-184 apply to all commands).
 */
#include "eastrace/eas.h"

#include <string.h>

struct status_entry {
    struct et_eas_status s;  /* first member: lookups hand out &entry->s */
    unsigned char sev;       /* enum et_eas_severity */
};

#define OK ET_EAS_SEV_SUCCESS
#define TR ET_EAS_SEV_TRANSIENT
#define RS ET_EAS_SEV_RECOVER
#define ER ET_EAS_SEV_ERROR
#define E(c, sev, n, m) { { (c), (n), (m) }, (sev) }
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* [MS-ASCMD] 2.2.2: common to every command; each means the request (or item) failed. */
static const struct status_entry common_status[] = {
    E(101, ER, "InvalidContent", "The request body could not be parsed: not WBXML, or the "
               "Content-Type does not match the body."),
    E(102, ER, "InvalidWBXML", "The request contains malformed WBXML."),
    E(103, ER, "InvalidXML", "The request is well-formed WBXML but does not follow the "
               "command's schema (missing or unexpected elements)."),
    E(104, ER, "InvalidDateTime", "A date/time value in the request is invalid."),
    E(105, ER, "InvalidCombinationOfIDs", "The request combines IDs that cannot be used "
               "together (e.g. a LongId with a CollectionId)."),
    E(106, ER, "InvalidIDs", "One or more IDs in the request are malformed."),
    E(107, ER, "InvalidMIME", "The MIME message sent by the device is invalid."),
    E(108, ER, "DeviceIdMissingOrInvalid", "The DeviceId is missing or invalid."),
    E(109, ER, "DeviceTypeMissingOrInvalid", "The DeviceType is missing or invalid."),
    E(110, TR, "ServerError", "The server hit an error; the device may retry later. If it "
               "persists, look at the server's event and mailbox logs."),
    E(111, TR, "ServerErrorRetryLater", "The server hit a transient error; the device should "
               "retry later."),
    E(112, ER, "ActiveDirectoryAccessDenied", "The server was denied access to a directory "
               "object (permissions in Active Directory)."),
    E(113, ER, "MailboxQuotaExceeded", "The user's mailbox is over its storage quota."),
    E(114, TR, "MailboxServerOffline", "The server holding the mailbox is offline."),
    E(115, ER, "SendQuotaExceeded", "The message would exceed the user's send quota."),
    E(116, ER, "MessageRecipientUnresolved", "A recipient of the message could not be "
               "resolved to an address."),
    E(117, ER, "MessageReplyNotAllowed", "The server does not allow a reply to this message "
               "(e.g. SmartReply to a meeting request)."),
    E(118, ER, "MessagePreviouslySent", "The message was already sent in an earlier request "
               "(same ClientId); the device retried a SendMail that had succeeded."),
    E(119, ER, "MessageHasNoRecipient", "The message has no recipient."),
    E(120, ER, "MailSubmissionFailed", "The server could not submit the message for "
               "delivery."),
    E(121, ER, "MessageReplyFailed", "The server failed to create the reply message."),
    E(122, ER, "AttachmentIsTooLarge", "The attachment is larger than the server allows."),
    E(123, ER, "UserHasNoMailbox", "The user account has no mailbox."),
    E(124, ER, "UserCannotBeAnonymous", "The request was anonymous; a user is required."),
    E(125, ER, "UserPrincipalCouldNotBeFound", "The user could not be found in the "
               "directory."),
    E(126, ER, "UserDisabledForSync", "The user is not allowed to use ActiveSync (mailbox "
               "feature disabled by the administrator)."),
    E(127, ER, "UserOnNewMailboxCannotSync", "The mailbox is on a newer server version this "
               "server cannot proxy to."),
    E(128, ER, "UserOnLegacyMailboxCannotSync", "The mailbox is on an older server version "
               "this server cannot reach."),
    E(129, ER, "DeviceIsBlockedForThisUser", "The device is blocked for this user (device "
               "access rule, quarantine or block list)."),
    E(130, ER, "AccessDenied", "The user or device is denied access to the resource."),
    E(131, ER, "AccountDisabled", "The user account is disabled."),
    E(132, RS, "SyncStateNotFound", "The server's sync state for this device was not found; "
               "the device must resync (FolderSync with SyncKey 0)."),
    E(133, TR, "SyncStateLocked", "The sync state is locked by another request of the same "
               "device; retry later."),
    E(134, RS, "SyncStateCorrupt", "The sync state on the server is corrupt; the device must "
               "resync from SyncKey 0."),
    E(135, RS, "SyncStateAlreadyExists", "The sync state already exists."),
    E(136, RS, "SyncStateVersionInvalid", "The sync state's version is invalid; the device "
               "must resync."),
    E(137, ER, "CommandNotSupported", "The server does not support this command."),
    E(138, ER, "VersionNotSupported", "The server does not support this command in the "
               "protocol version the device sent."),
    E(139, ER, "DeviceNotFullyProvisionable", "The device cannot apply all the required "
               "policy settings and the policy does not allow such devices."),
    E(140, RS, "RemoteWipeRequested", "A remote wipe was requested; the device must "
               "provision to receive it."),
    E(141, ER, "LegacyDeviceOnStrictPolicy", "The device sent no policy key but the policy "
               "does not allow devices that cannot be provisioned."),
    E(142, RS, "DeviceNotProvisioned", "The device must run Provision before this command."),
    E(143, RS, "PolicyRefresh", "The security policy changed; the device must provision "
               "again."),
    E(144, RS, "InvalidPolicyKey", "The policy key the device sent is not the current one; "
               "the device must provision again."),
    E(145, ER, "ExternallyManagedDevicesNotAllowed", "The device says it is managed by a "
               "third party, and the policy does not allow that."),
    E(146, ER, "NoRecurrenceInCalendar", "The request asks for a recurrence the calendar "
               "item does not have."),
    E(147, ER, "UnexpectedItemClass", "The item class is wrong for the folder or command."),
    E(148, ER, "RemoteServerHasNoSSL", "The remote server has no TLS/SSL enabled."),
    E(149, ER, "InvalidStoredRequest", "The request cached on the server (empty Sync or Ping) "
               "is invalid; the device must send the full request."),
    E(150, ER, "ItemNotFound", "The item was not found."),
    E(151, ER, "TooManyFolders", "The mailbox has too many folders."),
    E(152, ER, "NoFoldersFound", "No folders were found."),
    E(153, ER, "ItemsLostAfterMove", "Items were lost after a move."),
    E(154, ER, "FailureInMoveOperation", "The move operation failed."),
    E(155, ER, "MoveCommandDisallowedForNonPersistentMoveAction", "A move is not allowed for "
               "a non-persistent move action."),
    E(156, ER, "MoveCommandInvalidDestinationFolder", "The move destination folder is "
               "invalid."),
    E(160, ER, "AvailabilityTooManyRecipients", "Too many recipients in the availability "
               "(free/busy) request."),
    E(161, ER, "AvailabilityDLLimitReached", "The distribution list in the availability "
               "request has too many members."),
    E(162, TR, "AvailabilityTransientFailure", "The availability service failed "
               "transiently."),
    E(163, ER, "AvailabilityFailure", "The availability service failed."),
    E(164, ER, "BodyPartPreferenceTypeNotSupported", "The requested BodyPartPreference type "
               "is not supported."),
    E(165, ER, "DeviceInformationRequired", "The device must send Settings DeviceInformation "
               "before this command."),
    E(166, ER, "InvalidAccountId", "The AccountId is invalid."),
    E(167, ER, "AccountSendDisabled", "Sending from this account is disabled."),
    E(168, ER, "IRM_FeatureDisabled", "Information Rights Management is disabled."),
    E(169, TR, "IRM_TransientError", "Information Rights Management failed transiently."),
    E(170, ER, "IRM_PermanentError", "Information Rights Management failed."),
    E(171, ER, "IRM_InvalidTemplateID", "The rights management template ID is invalid."),
    E(172, ER, "IRM_OperationNotPermitted", "The rights management restrictions forbid this "
               "operation."),
    E(173, ER, "NoPicture", "The contact has no picture."),
    E(174, ER, "PictureTooLarge", "The contact picture is larger than the requested "
               "maximum."),
    E(175, ER, "PictureLimitReached", "The number of pictures returned reached the limit."),
    E(176, ER, "BodyPart_ConversationTooLarge", "The conversation is too large to return as "
               "a body part."),
    E(177, ER, "MaximumDevicesReached", "The user has reached the maximum number of device "
               "partnerships; remove old devices from the mailbox."),
    E(178, ER, "InvalidMimeBodyCombination", "The MIME body combination in the request is "
               "invalid."),
    E(179, ER, "InvalidSmartForwardParameters", "The SmartForward parameters are invalid."),
    E(183, ER, "InvalidRecipients", "One or more recipients are invalid."),
    E(184, ER, "OneOrMoreExceptionsFailed", "One or more exceptions of a recurring item "
               "failed."),
};

/* [MS-ASCMD] 2.2.3.177.17 Sync (Sync, Collection, Add, Change, Delete, Fetch). */
static const struct status_entry sync_status[] = {
    E(1, OK, "Success", "The Sync succeeded."),
    E(3, RS, "InvalidSyncKey", "The SyncKey is invalid or out of date; the device must "
             "resync the folder from SyncKey 0."),
    E(4, ER, "ProtocolError", "The Sync request has a syntax or protocol error."),
    E(5, TR, "ServerError", "The server hit an error, often transient; the device retries."),
    E(6, ER, "ConversionError", "An item could not be converted between client and server "
             "formats (malformed item data)."),
    E(7, ER, "Conflict", "The item changed on both client and server; the server's version "
             "wins."),
    E(8, ER, "ObjectNotFound", "The item the device changed, deleted or fetched no longer "
             "exists on the server."),
    E(9, ER, "CannotComplete", "The Sync cannot complete, e.g. the mailbox is full or out "
             "of space."),
    E(12, RS, "FolderHierarchyChanged", "The folder hierarchy changed; the device must run "
              "FolderSync before syncing."),
    E(13, ER, "IncompleteRequest", "The empty or partial Sync cannot be completed from the "
              "server's cache; the device must send the full request."),
    E(14, ER, "InvalidWaitOrHeartbeat", "The Wait or HeartbeatInterval value is outside the "
              "server's allowed range (see the Limit element)."),
    E(15, ER, "TooManyCollections", "The Sync asks for more folders than the server allows."),
    E(16, TR, "Retry", "Something on the server caused a retriable error; the device "
              "resends the request."),
};

/* [MS-ASCMD] 2.2.3.177.11 Ping. */
static const struct status_entry ping_status[] = {
    E(1, OK, "HeartbeatExpired", "The heartbeat interval passed with no changes in the "
             "watched folders; the device pings again."),
    E(2, OK, "Changes", "Changes occurred in at least one watched folder; the device syncs "
             "the folders listed."),
    E(3, ER, "MissingParameters", "The Ping request lacks parameters the server has no "
             "cached copy of (heartbeat or folder list)."),
    E(4, ER, "SyntaxError", "The Ping request has a syntax error."),
    E(5, ER, "HeartbeatOutOfRange", "The heartbeat interval is outside the range the server "
             "allows (see HeartbeatInterval in the response)."),
    E(6, ER, "TooManyFolders", "The Ping watches more folders than the server allows (see "
             "MaxFolders)."),
    E(7, RS, "FolderSyncRequired", "The folder hierarchy is out of date; the device must run "
             "FolderSync."),
    E(8, TR, "ServerError", "The server hit an error, often transient; the device retries."),
};

/* [MS-ASCMD] 2.2.3.177.5 FolderSync. */
static const struct status_entry foldersync_status[] = {
    E(1, OK, "Success", "The FolderSync succeeded."),
    E(6, TR, "ServerError", "The server hit an error, often transient; the device retries."),
    E(9, RS, "InvalidSyncKey", "The folder SyncKey is invalid or out of date; the device "
             "must run FolderSync with SyncKey 0."),
    E(10, ER, "BadRequest", "The FolderSync request is malformed."),
    E(11, TR, "UnknownError", "The server hit an unknown error; the device retries."),
    E(12, TR, "CodeUnknown", "An unusual back-end error occurred."),
};

/* [MS-ASCMD] 2.2.3.177.3 FolderCreate. */
static const struct status_entry foldercreate_status[] = {
    E(1, OK, "Success", "The folder was created."),
    E(2, ER, "FolderExists", "A folder with that name already exists under that parent."),
    E(3, ER, "SpecialFolder", "The parent folder is a special system folder."),
    E(5, ER, "ParentNotFound", "The parent folder was not found."),
    E(6, TR, "ServerError", "The server hit an error, often transient."),
    E(9, RS, "InvalidSyncKey", "The folder SyncKey is invalid; the device must run "
             "FolderSync with SyncKey 0."),
    E(10, ER, "BadRequest", "The request is malformed."),
    E(11, TR, "UnknownError", "The server hit an unknown error."),
    E(12, TR, "CodeUnknown", "An unusual back-end error occurred."),
};

/* [MS-ASCMD] 2.2.3.177.4 FolderDelete. */
static const struct status_entry folderdelete_status[] = {
    E(1, OK, "Success", "The folder was deleted."),
    E(3, ER, "SpecialFolder", "A special system folder cannot be deleted."),
    E(4, ER, "FolderNotFound", "The folder does not exist."),
    E(6, TR, "ServerError", "The server hit an error, often transient."),
    E(9, RS, "InvalidSyncKey", "The folder SyncKey is invalid; the device must run "
             "FolderSync with SyncKey 0."),
    E(10, ER, "BadRequest", "The request is malformed."),
    E(11, TR, "UnknownError", "The server hit an unknown error."),
};

/* [MS-ASCMD] 2.2.3.177.6 FolderUpdate. */
static const struct status_entry folderupdate_status[] = {
    E(1, OK, "Success", "The folder was updated (renamed or moved)."),
    E(2, ER, "FolderExists", "A folder with that name already exists."),
    E(3, ER, "SpecialFolder", "A special system folder cannot be updated."),
    E(4, ER, "FolderNotFound", "The folder does not exist."),
    E(5, ER, "ParentNotFound", "The new parent folder was not found."),
    E(6, TR, "ServerError", "The server hit an error, often transient."),
    E(8, TR, "Timeout", "The server took too long to answer."),
    E(9, RS, "InvalidSyncKey", "The folder SyncKey is invalid; the device must run "
             "FolderSync with SyncKey 0."),
    E(10, ER, "BadRequest", "The request is malformed."),
    E(11, TR, "UnknownError", "The server hit an unknown error."),
};

/* [MS-ASCMD] 2.2.3.177.7 GetItemEstimate (Response). */
static const struct status_entry getitemestimate_status[] = {
    E(1, OK, "Success", "The estimate was returned."),
    E(2, ER, "InvalidCollection", "A collection is invalid or was not given."),
    E(3, RS, "SyncStateNotPrimed", "The folder was never synced; the device must run Sync "
             "with SyncKey 0 first."),
    E(4, RS, "InvalidSyncKey", "The SyncKey is invalid; the device must resync the folder."),
};

/* [MS-ASCMD] 2.2.3.177.8 ItemOperations (root, Fetch, Move, EmptyFolderContents). */
static const struct status_entry itemoperations_status[] = {
    E(1, OK, "Success", "The operation succeeded."),
    E(2, ER, "ProtocolError", "The request violates the protocol or fails XML validation."),
    E(3, TR, "ServerError", "The server hit an error."),
    E(4, ER, "BadUri", "The document library URI is bad."),
    E(5, ER, "AccessDenied", "Access to the document library was denied."),
    E(6, ER, "ObjectNotFound", "The object was not found or access was denied."),
    E(7, TR, "ConnectionFailed", "The server could not connect to the document library "
             "server."),
    E(8, ER, "InvalidByteRange", "The byte range is invalid or too large."),
    E(9, ER, "UnknownStore", "The store is unknown or not supported."),
    E(10, ER, "EmptyFile", "The file is empty."),
    E(11, ER, "DataTooLarge", "The requested data is too large."),
    E(12, TR, "IoFailure", "The file could not be downloaded because of an I/O failure."),
    E(14, ER, "ConversionFailed", "The item could not be converted."),
    E(15, ER, "InvalidAttachment", "The attachment or attachment ID is invalid."),
    E(16, ER, "ResourceAccessDenied", "Access to the resource is denied."),
    E(17, ER, "PartialSuccess", "EmptyFolderContents completed only in part."),
    E(18, ER, "CredentialsRequired", "The server needs credentials for the resource."),
    E(156, ER, "ActionNotSupported", "The move destination must be a mail folder "
               "(conversation move)."),
};

/* [MS-ASCMD] 2.2.3.177.9 MeetingResponse. */
static const struct status_entry meetingresponse_status[] = {
    E(1, OK, "Success", "The meeting response was processed."),
    E(2, ER, "InvalidMeetingRequest", "The item is not a valid meeting request."),
    E(3, TR, "MailboxError", "An error occurred in the user's mailbox."),
    E(4, TR, "ServerError", "An error occurred on the server."),
};

/* [MS-ASCMD] 2.2.3.177.10 MoveItems (Response). Note: 3 is success here. */
static const struct status_entry moveitems_status[] = {
    E(1, ER, "InvalidSource", "The source folder or item ID is invalid (the item may have "
             "been moved or deleted already)."),
    E(2, ER, "InvalidDestination", "The destination folder ID is invalid."),
    E(3, OK, "Success", "The item was moved."),
    E(4, ER, "SameSourceAndDestination", "Source and destination folders are the same."),
    E(5, TR, "MoveFailed", "The move failed on the server (for example an item moved to "
             "more than one place); the device may retry."),
    E(7, TR, "Locked", "The source or destination item is locked; retry later."),
};

/* [MS-ASCMD] 2.2.3.177.12 ResolveRecipients: root and Response. */
static const struct status_entry resolverecipients_status[] = {
    E(1, OK, "Success", "The recipient was resolved."),
    E(2, OK, "Ambiguous", "The recipient matched several entries; suggestions are returned."),
    E(3, OK, "AmbiguousPartial", "The recipient matched several entries; only some "
             "suggestions are returned."),
    E(4, ER, "NotFound", "The recipient was not found in the directory or contacts."),
    E(5, ER, "ProtocolError", "The request has a protocol error."),
    E(6, TR, "ServerError", "The server hit an error, often transient."),
};

/* ResolveRecipients Certificates. */
static const struct status_entry rr_certificates_status[] = {
    E(1, OK, "Success", "The certificates were returned."),
    E(7, ER, "NoValidCertificate", "The recipient has no valid S/MIME certificate."),
    E(8, ER, "CertificateLimitReached", "The overall limit on returned certificates was "
             "reached."),
};

/* ResolveRecipients Availability. */
static const struct status_entry rr_availability_status[] = {
    E(1, OK, "Success", "Free/busy information was returned."),
    E(160, ER, "TooManyRecipients", "Too many recipients for a free/busy request."),
    E(161, ER, "DLLimitReached", "The distribution list has too many members for free/busy."),
    E(162, TR, "TransientFailure", "The free/busy lookup failed transiently."),
    E(163, ER, "Failure", "The free/busy lookup failed."),
};

/* ResolveRecipients Picture. */
static const struct status_entry rr_picture_status[] = {
    E(1, OK, "Success", "The picture was returned."),
    E(173, ER, "NoPicture", "The contact has no picture."),
    E(174, ER, "PictureTooLarge", "The picture is larger than MaxSize."),
    E(175, ER, "PictureLimitReached", "The number of pictures reached MaxPictures."),
};

/* SendMail, SmartReply, SmartForward: the protocol answers success with an empty body and
 * has only the Common values otherwise (2.2.3.177.14/16), but Exchange logs a success as
 * Status 1 (IIS Log= "S:1", mailbox logs). */
static const struct status_entry composemail_status[] = {
    E(1, OK, "Success", "The message was accepted for sending (Exchange logs success as 1)."),
};

/* [MS-ASCMD] 2.2.3.177.13 Search: root. */
static const struct status_entry search_status[] = {
    E(1, OK, "Success", "The Search request was processed."),
    E(2, ER, "InvalidRequest", "The Search request is invalid."),
    E(3, TR, "ServerError", "The server hit an error, often transient."),
};

/* Search Store. */
static const struct status_entry search_store_status[] = {
    E(1, OK, "Success", "The search succeeded (it may have no results)."),
    E(2, ER, "InvalidRequest", "The search request is invalid."),
    E(3, TR, "ServerError", "The server hit an error, often transient."),
    E(4, ER, "BadLink", "The link to the document library is bad."),
    E(5, ER, "AccessDenied", "Access to the store was denied."),
    E(6, ER, "NotFound", "The store or item was not found."),
    E(7, TR, "ConnectionFailed", "The server could not connect to the store."),
    E(8, ER, "QueryTooComplex", "The search query is too complex."),
    E(10, TR, "Timeout", "The search timed out; the device may retry or narrow it."),
    E(11, RS, "FolderSyncRequired", "The folder hierarchy is out of date; the device must "
              "run FolderSync."),
    E(12, ER, "EndOfRange", "The requested range is past the end of the retrievable "
              "results."),
    E(13, ER, "AccessBlocked", "Access to the store is blocked."),
    E(14, ER, "CredentialsRequired", "The server needs credentials for the store."),
};

/* [MS-ASCMD] 2.2.3.177.2 Find (root and Response). */
static const struct status_entry find_status[] = {
    E(1, OK, "Success", "The Find request was processed (it may have no matches)."),
    E(2, ER, "InvalidRequest", "The Find request failed validation."),
    E(3, RS, "FolderSyncRequired", "The folder hierarchy is out of date; the device must run "
             "FolderSync and retry."),
    E(4, ER, "StartWithRangeZero", "The requested Range must begin with 0."),
};

/* [MS-ASCMD] 2.2.3.177.15 Settings: root. */
static const struct status_entry settings_status[] = {
    E(1, OK, "Success", "The Settings request succeeded."),
    E(2, ER, "ProtocolError", "The request has a protocol error."),
    E(3, ER, "AccessDenied", "Access was denied."),
    E(4, TR, "ServerUnavailable", "The server is unavailable."),
    E(5, ER, "InvalidArguments", "The request has invalid arguments."),
    E(6, ER, "ConflictingArguments", "The request has conflicting arguments."),
    E(7, ER, "DeniedByPolicy", "The request was denied by policy."),
};

/* Settings per-property Status (Oof, DevicePassword, DeviceInformation, UserInformation,
 * RightsManagementInformation). */
static const struct status_entry settings_prop_status[] = {
    E(1, OK, "Success", "The Get or Set succeeded."),
    E(2, ER, "ProtocolError", "The XML of this setting is malformed."),
    E(5, ER, "InvalidArguments", "The setting has invalid arguments."),
    E(7, ER, "DeniedByPolicy", "The setting was denied by policy (e.g. a device password "
             "recovery not allowed)."),
};

/* [MS-ASCMD] 2.2.3.177.18 ValidateCert (root and Certificate). */
static const struct status_entry validatecert_status[] = {
    E(1, OK, "Success", "The certificate is valid."),
    E(2, ER, "ProtocolError", "The request has a protocol error."),
    E(3, ER, "SignatureNotValidated", "The signature in the digital ID cannot be validated."),
    E(4, ER, "UntrustedSource", "The digital ID was issued by an untrusted source."),
    E(5, ER, "BadChain", "The certificate chain is not formed correctly."),
    E(6, ER, "NotValidForSigning", "The digital ID is not valid for signing."),
    E(7, ER, "Expired", "The digital ID is expired or not yet valid."),
    E(8, ER, "BadTimeNesting", "The validity periods in the chain are not properly nested."),
    E(9, ER, "WrongPurpose", "The digital ID is used for a purpose it was not issued for."),
    E(10, ER, "MissingInformation", "Information on the digital ID is missing or wrong."),
    E(11, ER, "NotACa", "A digital ID in the chain cannot act as a CA."),
    E(12, ER, "AddressMismatch", "The digital ID does not match the sender's email "
              "address."),
    E(13, ER, "Revoked", "The digital ID was revoked."),
    E(14, TR, "RevocationServerOffline", "The revocation server is offline."),
    E(15, ER, "ChainRevoked", "A digital ID in the chain was revoked."),
    E(16, TR, "RevocationUnknown", "The revocation status could not be determined."),
    E(17, TR, "ServerError", "An unknown server error occurred."),
};

/* [MS-ASPROV] 2.2.2.54.2 Provision root. */
static const struct status_entry provision_status[] = {
    E(1, OK, "Success", "The Provision request succeeded."),
    E(2, ER, "ProtocolError", "The Provision request has a syntax error."),
    E(3, TR, "ServerError", "The server hit an error, often transient; the device retries."),
};

/* [MS-ASPROV] 2.2.2.54.1 Policy (server to client values). */
static const struct status_entry provision_policy_status[] = {
    E(1, OK, "Success", "The policy was returned or acknowledged."),
    E(2, OK, "NoPolicy", "There is no policy for this device: it syncs without one."),
    E(3, ER, "UnknownPolicyType", "The PolicyType is unknown (expected "
             "MS-EAS-Provisioning-WBXML)."),
    E(4, ER, "PolicyCorrupt", "The policy data on the server is corrupt (possibly tampered "
             "with)."),
    E(5, RS, "WrongPolicyKey", "The device acknowledged a policy key that is not the "
             "current one; it must provision again."),
};

/* [MS-ASPROV] RemoteWipe / AccountOnlyRemoteWipe (client to server). */
static const struct status_entry provision_wipe_status[] = {
    E(1, OK, "WipeSucceeded", "The device reports the wipe succeeded."),
    E(2, ER, "WipeFailed", "The device reports the wipe failed."),
};

/* Autodiscover (plain XML, listed for completeness). */
static const struct status_entry autodiscover_status[] = {
    E(1, OK, "Success", "Autodiscover succeeded."),
    E(2, ER, "ProtocolError", "The Autodiscover request has a protocol error."),
};

struct table {
    const char *root;   /* root element local name */
    const char *parent; /* element holding Status; NULL matches any parent */
    const struct status_entry *v;
    size_t n;
};

#define T(r, p, a) { (r), (p), (a), NELEM(a) }

/* Order matters: parent-specific tables come before a command's catch-all table. */
static const struct table tables[] = {
    T("Sync", NULL, sync_status),
    T("Ping", NULL, ping_status),
    T("FolderSync", NULL, foldersync_status),
    T("FolderCreate", NULL, foldercreate_status),
    T("FolderDelete", NULL, folderdelete_status),
    T("FolderUpdate", NULL, folderupdate_status),
    T("GetItemEstimate", NULL, getitemestimate_status),
    T("ItemOperations", NULL, itemoperations_status),
    T("MeetingResponse", NULL, meetingresponse_status),
    T("MoveItems", NULL, moveitems_status),
    T("ResolveRecipients", "Certificates", rr_certificates_status),
    T("ResolveRecipients", "Availability", rr_availability_status),
    T("ResolveRecipients", "Picture", rr_picture_status),
    T("ResolveRecipients", NULL, resolverecipients_status),
    T("Search", "Store", search_store_status),
    T("Search", NULL, search_status),
    T("Find", NULL, find_status),
    T("Settings", "Oof", settings_prop_status),
    T("Settings", "DevicePassword", settings_prop_status),
    T("Settings", "DeviceInformation", settings_prop_status),
    T("Settings", "UserInformation", settings_prop_status),
    T("Settings", "RightsManagementInformation", settings_prop_status),
    T("Settings", NULL, settings_status),
    T("ValidateCert", NULL, validatecert_status),
    T("Provision", "Policy", provision_policy_status),
    T("Provision", "RemoteWipe", provision_wipe_status),
    T("Provision", "AccountOnlyRemoteWipe", provision_wipe_status),
    T("Provision", NULL, provision_status),
    T("Autodiscover", NULL, autodiscover_status),
    T("SendMail", NULL, composemail_status),
    T("SmartReply", NULL, composemail_status),
    T("SmartForward", NULL, composemail_status),
};

static const struct status_entry *find_code(const struct status_entry *v, size_t n, int code)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].s.code == code)
            return &v[i];
    return NULL;
}

static int name_eq(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

static const struct status_entry *lookup(const char *root_cmd, const char *parent, int code)
{
    for (size_t i = 0; i < NELEM(tables); i++) {
        const struct table *t = &tables[i];
        if (!name_eq(t->root, root_cmd))
            continue;
        if (t->parent != NULL && !name_eq(t->parent, parent))
            continue;
        /* The first table matching root and parent is the one in force: a Policy Status of
         * 3 must not fall through to the Provision root's 3. */
        const struct status_entry *e = find_code(t->v, t->n, code);
        return e != NULL ? e : find_code(common_status, NELEM(common_status), code);
    }
    return find_code(common_status, NELEM(common_status), code);
}

const struct et_eas_status *et_eas_status_lookup(const char *root_cmd, const char *parent,
                                                 int code)
{
    const struct status_entry *e = lookup(root_cmd, parent, code);
    return e != NULL ? &e->s : NULL;
}

int et_eas_status_severity(const char *root_cmd, const char *parent, int code)
{
    const struct status_entry *e = lookup(root_cmd, parent, code);
    return e != NULL ? e->sev : ET_EAS_SEV_UNKNOWN;
}

const char *et_eas_severity_name(int sev)
{
    switch (sev) {
    case ET_EAS_SEV_SUCCESS:
        return "success";
    case ET_EAS_SEV_TRANSIENT:
        return "transient";
    case ET_EAS_SEV_RECOVER:
        return "recover";
    case ET_EAS_SEV_ERROR:
        return "error";
    default:
        return "unknown";
    }
}

void et_eas_status_tables(et_eas_status_table_cb cb, void *arg)
{
    for (size_t i = 0; i < NELEM(tables); i++)
        for (size_t j = 0; j < tables[i].n; j++)
            cb(tables[i].root, tables[i].parent, &tables[i].v[j].s, tables[i].v[j].sev, arg);
    for (size_t j = 0; j < NELEM(common_status); j++)
        cb(NULL, NULL, &common_status[j].s, common_status[j].sev, arg);
}

struct http_entry {
    int status;
    const char *meaning;
};

/* [MS-ASHTTP] 2.2.2.1.1 and 3.1.5.2; 449 is the provisioning retry of EAS 12.x (Exchange
 * 2007), 503 with Retry-After or X-MS-ASThrottle is throttling, 507 is the mailbox store. */
static const struct http_entry http_meanings[] = {
    {200, "The command succeeded (read the WBXML Status for the command's own result)."},
    {400, "Bad Request: the server could not understand the request (malformed query or "
          "body); repeating it fails again."},
    {401, "Unauthorized: credentials missing or refused (wrong password, wrong "
          "authentication scheme, or account locked)."},
    {403, "Forbidden: the user is not enabled for ActiveSync, or TLS/client certificate "
          "requirements were not met."},
    {404, "Not Found: wrong URL, ActiveSync virtual directory missing, or not an ActiveSync "
          "server."},
    {413, "Request Entity Too Large: the request (usually a message with attachments) is "
          "larger than the server accepts."},
    {449, "Retry With: the device must run Provision and then retry (EAS 12.x and older)."},
    {451, "Redirect: the mailbox is better reached through another server; use the URL in "
          "X-MS-Location, else run Autodiscover again."},
    {456, "Blocked: the user's account is blocked."},
    {457, "Expired Password: the user's password has expired (see "
          "X-MS-Credential-Service-Url)."},
    {500, "Internal Server Error: the server failed unexpectedly; check its logs."},
    {501, "Not Implemented: the server does not support the command or method."},
    {502, "Proxy Error: the server could not reach the mailbox server."},
    {503, "Service Unavailable: the server is busy or the device is throttled; honour "
          "Retry-After and X-MS-ASThrottle."},
    {507, "Insufficient Storage: the server or mailbox is out of space."},
};

const char *et_eas_http_status_meaning(int http_status)
{
    for (size_t i = 0; i < NELEM(http_meanings); i++)
        if (http_meanings[i].status == http_status)
            return http_meanings[i].meaning;
    return NULL;
}

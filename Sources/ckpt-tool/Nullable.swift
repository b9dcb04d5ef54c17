/// A document field that is always present, null when nil (Codable's synthesis leaves nil out).
@propertyWrapper
struct Nullable<Value: Encodable>: Encodable {
    var wrappedValue: Value?

    /// Declared, so that memberwise initializers take a `Value?` rather than the wrapper.
    init(wrappedValue: Value?) {
        self.wrappedValue = wrappedValue
    }

    func encode(to encoder: Encoder) throws {
        try wrappedValue.encode(to: encoder)
    }
}
